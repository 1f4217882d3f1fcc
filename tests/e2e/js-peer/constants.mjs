// Shared by the js-libp2p peer page (peer.mjs) and the tests (js-peers.mjs).

/** Echoes every byte back; closes when the dialer closed its side. */
export const ECHO = "/shoal-test/echo/1.0.0";
/** Reads everything the dialer writes until it closes its side, then answers with the count
 * of bytes read (8 bytes, big-endian) and closes: one-way transfer timing. */
export const SINK = "/shoal-test/sink/1.0.0";
