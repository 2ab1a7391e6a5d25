/// The `role` field of `FCGI_BEGIN_REQUEST`.
public enum FastCGIRole: UInt16, Sendable {
    case responder = 1
    case authorizer = 2
    case filter = 3
}
