import NIOCore

/// What the worker sees of one request, in order: one head, any number of body parts, one end.
public enum FastCGIRequestPart: Sendable, Equatable {
    /// `FCGI_BEGIN_REQUEST` arrived and the `FCGI_PARAMS` stream ended.
    case head(FastCGIRequestHead)
    /// Request body bytes as they arrived: part or all of one `FCGI_STDIN` record's content, never
    /// empty (a slice of the input, not a copy).
    case body(ByteBuffer)
    /// The `FCGI_STDIN` stream ended: the request body is complete.
    case end
}
