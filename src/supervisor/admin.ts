/**
 * The admin API: HTTP/1.1 with JSON on a Unix socket, in Docker's style (`curl --unix-socket`); the
 * module the rest of handoff imports. Its routes (status, handoffs, abort, metrics) are the table
 * ROUTES in admin/routes.ts.
 *
 * Errors are `{"error": {"kind", "message"}}` with a 4xx/5xx status. Whatever a client sends, the
 * server answers with one of those and goes on: bodies are capped, JSON is checked field by field,
 * and no stack trace or environment value ever reaches a response.
 *
 * The socket is created 0600 (0660 and chgrp'd with a group). A stale socket file (nothing answers a
 * connect) is removed at start; a live one makes the start fail; close() removes the socket.
 *
 * The parts live in admin/, one concept each:
 *   server.ts       the transport: the Unix-socket HTTP server, its timeouts, parser errors
 *   socket-file.ts  the socket file (stale or live) and the group that may use it
 *   routes.ts       the route table and its handlers
 *   validate.ts     request bodies and query, checked field by field
 *   errors.ts       AdminStartError (for the operator) and HttpError (for a client)
 */

export { AdminStartError } from './admin/errors.js';
export { MAX_SOCKET_PATH_BYTES, resolveGroup } from './admin/socket-file.js';
export { DEFAULT_HISTORY_LIMIT, MAX_BODY_BYTES, MAX_HISTORY_LIMIT, UPGRADE_FIELDS, parseUpgradeBody } from './admin/validate.js';
export { ROUTES, type Route } from './admin/routes.js';
export {
  HEADERS_TIMEOUT_MS,
  MAX_TIMEOUT_CHECK_MS,
  REQUEST_TIMEOUT_MS,
  startAdminServer,
  timeoutCheckIntervalMs,
  type AdminServer,
  type AdminServerOptions,
} from './admin/server.js';
