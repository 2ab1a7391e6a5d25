import NIOCore

/// What the worker writes back for the request in progress.
public enum FastCGIResponsePart: Sendable, Equatable {
    /// Response bytes (CGI headers, then body) of any size; empty buffers write nothing.
    case stdout(ByteBuffer)
    /// Log bytes of any size for the web server's error log; empty buffers write nothing.
    case stderr(ByteBuffer)
    /// Ends the response: an empty `FCGI_STDOUT` then `FCGI_END_REQUEST` (request complete) with `appStatus`.
    case end(appStatus: UInt32)
    /// The last response bytes, then the end: what `.stdout(bytes)` and `.end(appStatus:)` write,
    /// but one pipeline write, and for a short response one buffer (one iovec for the socket).
    /// The `appStatus` is 0, or ``FastCGIServerCodec/keptConnectionAppStatus`` when
    /// `keepsConnection`: a flag rather than the number keeps the part within NIOAny's inline
    /// storage, so the response's last write allocates no box.
    case stdoutThenEnd(ByteBuffer, keepsConnection: Bool)
    /// `FCGI_END_REQUEST` with `FCGI_OVERLOADED` for a request the worker will not run, whether or
    /// not it has arrived: written on an idle kept-alive connection just before closing it.
    case overloaded(requestID: UInt16)
    /// A `requestWaiting` record (with this process's pid) or an empty `requestStarted` one: the
    /// request waits for a slot, or no longer does.
    case slotNotice(FastCGIRecordType, requestID: UInt16)
}
