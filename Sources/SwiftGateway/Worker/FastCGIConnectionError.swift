/// A FastCGI connection that does not follow the protocol.
struct FastCGIConnectionError: Error, CustomStringConvertible {
    var description: String
}
