/**
 * The control channel to S: opening it on the inherited fd, the Hello exchange every supervised
 * start begins with, and the receive loop that hands each message on (dispatch.ts).
 */

import net from 'node:net';
import { Channel, PROTO_MAX, PROTO_MIN, ProtocolError, asProtocolError, idToString, type Message, type MessageOf, type MessageType, type Side } from '../protocol/index.js';
import type { Runtime } from './runtime.js';
import type { SupervisorLoss } from './supervisor-loss.js';
import { failChannel } from './wire.js';

export class SupervisorLink {
  constructor(
    private readonly rt: Runtime,
    /** Acts on one message from S; throws what fails the channel. */
    private readonly onMessage: (msg: Message) => void,
    private readonly loss: SupervisorLoss,
  ) {}

  open(): Channel {
    const socket = new net.Socket({ fd: this.rt.contract.sockFd! });
    const channel = new Channel(socket);
    this.rt.channel = channel;
    // The close is acted on by whoever receives (hello, loop), after every message before it.
    return channel;
  }

  /** Says Hello and waits for HelloAck; undefined when the channel failed (the S-loss rules then apply). */
  async hello(channel: Channel, role: Side): Promise<MessageOf<'HelloAck'> | undefined> {
    const rt = this.rt;
    channel.send({ type: 'Hello', role, pid: process.pid, build_id: rt.buildId, proto_min: PROTO_MIN, proto_max: PROTO_MAX, capabilities: { reserved: 0n } });
    channel.lastReceived = performance.now();
    this.loss.watch(channel);
    let msg: Message;
    do {
      try {
        msg = await channel.receive();
      } catch (err) {
        return this.end(err, false);
      }
    } while (msg.type === 'Heartbeat');
    if (msg.type !== 'HelloAck') return this.end(new ProtocolError('unexpected_message', `expected HelloAck, got ${msg.type}`), false);
    const v = msg.proto_version_chosen;
    if (v < PROTO_MIN || v > PROTO_MAX) return this.end(new ProtocolError('version_mismatch', `HelloAck chose version ${v}, ours is ${PROTO_MIN}..${PROTO_MAX}`), false);
    channel.version = v;
    rt.logger.info({ role, version: v, handoff_id: idToString(msg.handoff_id) }, 'hello acknowledged');
    rt.events.emit('hello', { role, handoffId: idToString(msg.handoff_id), version: v });
    return msg;
  }

  /**
   * Receives until the channel closes (or we exit), then applies the S-loss rules: only after
   * every message that came before the close, so an Abort followed by EOF is an Abort.
   */
  async loop(channel: Channel): Promise<void> {
    /** The last message from S that was acted on (heartbeats aside). */
    let last: MessageType | undefined;
    for (;;) {
      let msg: Message;
      try {
        msg = await channel.receive();
      } catch (err) {
        this.end(err, last === 'Abort');
        return;
      }
      if (this.rt.phase === 'exiting') return;
      if (msg.type === 'Heartbeat') continue;
      this.rt.logger.debug({ type: msg.type }, 'received');
      try {
        this.onMessage(msg);
        last = msg.type;
      } catch (err) {
        last = undefined;
        failChannel(channel, err);
      }
    }
  }

  /** The channel is closed, or is to be closed for `err`: fail it if still open, then the S-loss rules. */
  end(err: unknown, afterAbort = false): undefined {
    const channel = this.rt.channel!;
    const e = asProtocolError(err, 'peer_closed');
    channel.fail(e);
    this.loss.onChannelClose(channel.closeError ?? e, afterAbort);
    return undefined;
  }
}
