/// What stops the standalone mode: a command line it cannot use, or an HTTP request cut off.
struct StandaloneOptionsError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
