export { listenTransport, connectTransport, openStreamSync } from './transport.ts';
export { listenNative, connectNative, checkVsockSupport, encodeSockaddr } from './native-socket.ts';
export type { NativeFamily } from './native-socket.ts';
