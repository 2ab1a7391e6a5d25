/// Where a program started by hand (not by Apache) serves, from its command line:
/// `--fastcgi unix:PATH|HOST:PORT` (behind mod_proxy_fcgi or nginx) or `--http HOST:PORT`.
struct StandaloneOptions: Equatable, Sendable {
    enum Mode: Equatable, Sendable {
        case fastCGI(ListenAddress)
        case http(ListenAddress)
    }

    var mode: Mode

    static let usage = """
        usage: PROGRAM --fastcgi unix:PATH | --fastcgi HOST:PORT | --http HOST:PORT
          --fastcgi ADDRESS   serve FastCGI (responder) on a Unix socket or TCP address,
                              e.g. behind Apache's mod_proxy_fcgi or nginx
          --http HOST:PORT    serve HTTP/1.1 directly, for development and debugging
        Under Apache, mod_swift_gateway starts the program itself: declare it with
        SwiftDaemonProcess and SwiftScriptAlias in httpd.conf.
        """

    /// Parses the arguments after the program name; nil when no standalone mode was asked for.
    static func parse(_ arguments: [String]) throws(StandaloneOptionsError) -> StandaloneOptions? {
        var mode: Mode?
        var index = arguments.startIndex
        while index < arguments.endIndex {
            let argument = arguments[index]
            switch argument {
            case "--fastcgi", "--http":
                let valueIndex = arguments.index(after: index)
                guard valueIndex < arguments.endIndex else {
                    throw StandaloneOptionsError("\(argument) needs an address")
                }
                guard mode == nil else { throw StandaloneOptionsError("give only one of --fastcgi and --http") }
                let address = try ListenAddress(parsing: arguments[valueIndex])
                if argument == "--http", case .unix = address {
                    throw StandaloneOptionsError("--http takes HOST:PORT")
                }
                mode = argument == "--http" ? .http(address) : .fastCGI(address)
                index = arguments.index(after: valueIndex)
            default:
                // Unknown arguments belong to the application.
                index = arguments.index(after: index)
            }
        }
        return mode.map { StandaloneOptions(mode: $0) }
    }
}
