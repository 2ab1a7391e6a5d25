/// The request line of FastCGI: who asked, and the CGI variables.
public struct FastCGIRequestHead: Sendable, Equatable {
    public var requestID: UInt16
    /// `FCGI_KEEP_CONN`: the web server keeps the connection open after this request.
    public var keepConnection: Bool
    /// The CGI variables in the order the web server sent them (names may repeat).
    public var environment: CGIEnvironment

    public init(requestID: UInt16, keepConnection: Bool, environment: CGIEnvironment) {
        self.requestID = requestID
        self.keepConnection = keepConnection
        self.environment = environment
    }

    public init(requestID: UInt16, keepConnection: Bool, parameters: [(name: String, value: String)]) {
        self.init(requestID: requestID, keepConnection: keepConnection, environment: CGIEnvironment(parameters))
    }

    /// The CGI variables as pairs, in order.
    public var parameters: [(name: String, value: String)] {
        get { self.environment.map { (name: $0.key, value: $0.value) } }
        set { self.environment = CGIEnvironment(newValue) }
    }

    /// The value of the variable `name` (the last, should it repeat).
    public func parameter(_ name: String) -> String? {
        self.environment[name]
    }
}
