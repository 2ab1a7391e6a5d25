/// A socket address to listen on.
enum ListenAddress: Equatable, Sendable, CustomStringConvertible {
    case unix(path: String)
    case tcp(host: String, port: Int)

    /// `unix:/run/app.sock`, `127.0.0.1:9000`, `[::1]:9000`, `localhost:9000`.
    init(parsing text: String) throws(StandaloneOptionsError) {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard !path.isEmpty else { throw StandaloneOptionsError("'\(text)': empty socket path") }
            self = .unix(path: path)
            return
        }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (1...65535).contains(port)
        else {
            throw StandaloneOptionsError("'\(text)' is not unix:PATH or HOST:PORT")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw StandaloneOptionsError("'\(text)': missing host") }
        self = .tcp(host: host, port: port)
    }

    var description: String {
        switch self {
        case .unix(let path): return "unix:\(path)"
        case .tcp(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }
}
