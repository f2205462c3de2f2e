/**
 * The control channel to S: opening it on the inherited fd, the Hello exchange every supervised
 * start begins with, and the receive loop that hands each message to the dispatcher.
 */

import net from 'node:net';
import { Channel, PROTO_MAX, PROTO_MIN, ProtocolError, idToString, type Message, type MessageOf, type Side } from '../protocol/index.js';
import type { Dispatcher } from './dispatch.js';
import type { Runtime } from './runtime.js';
import { startHeartbeats, type SupervisorLoss } from './supervisor-loss.js';
import { failChannel } from './wire.js';

export class SupervisorLink {
  constructor(
    private readonly rt: Runtime,
    private readonly dispatcher: Dispatcher,
    private readonly loss: SupervisorLoss,
  ) {}

  open(): Channel {
    const socket = new net.Socket({ fd: this.rt.contract.sockFd! });
    const channel = new Channel(socket);
    this.rt.channel = channel;
    channel.on('close', (err) => this.loss.onChannelClose(err));
    return channel;
  }

  /** Says Hello and waits for HelloAck; undefined when the channel failed (the S-loss rules then apply). */
  async hello(channel: Channel, role: Side): Promise<MessageOf<'HelloAck'> | undefined> {
    const rt = this.rt;
    channel.send({ type: 'Hello', role, pid: process.pid, build_id: rt.buildId, proto_min: PROTO_MIN, proto_max: PROTO_MAX, capabilities: { reserved: 0n } });
    channel.lastReceived = performance.now();
    startHeartbeats(rt, channel);
    let msg: Message;
    do {
      try {
        msg = await channel.receive();
      } catch {
        return undefined; // closed: onChannelClose applies the S-loss rules
      }
    } while (msg.type === 'Heartbeat');
    if (msg.type !== 'HelloAck') {
      channel.fail(new ProtocolError('unexpected_message', `expected HelloAck, got ${msg.type}`));
      return undefined;
    }
    const v = msg.proto_version_chosen;
    if (v < PROTO_MIN || v > PROTO_MAX) {
      channel.fail(new ProtocolError('version_mismatch', `HelloAck chose version ${v}, ours is ${PROTO_MIN}..${PROTO_MAX}`));
      return undefined;
    }
    channel.version = v;
    rt.logger.info({ role, version: v, handoff_id: idToString(msg.handoff_id) }, 'hello acknowledged');
    rt.events.emit('hello', { role, handoffId: idToString(msg.handoff_id), version: v });
    return msg;
  }

  /** Receives until the channel closes (or we exit). */
  async loop(channel: Channel): Promise<void> {
    for (;;) {
      let msg: Message;
      try {
        msg = await channel.receive();
      } catch {
        return;
      }
      if (this.rt.exiting) return;
      this.rt.logger.debug({ type: msg.type }, 'received');
      try {
        this.dispatcher.onMessage(channel, msg);
      } catch (err) {
        failChannel(channel, err);
      }
    }
  }
}
