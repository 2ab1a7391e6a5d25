import HTTPTypes
import NIOCore

/// One HTTP request as Apache forwarded it.
public struct GatewayRequest: Sendable {
    /// Method, scheme, authority, path (with query) and header fields.
    public var head: HTTPRequest
    /// The CGI/1.1 variables Apache built: `SCRIPT_NAME`, `PATH_INFO`, `QUERY_STRING`,
    /// `REMOTE_ADDR`, `REMOTE_USER`, `HTTPS`, `SetEnv` values, … (`environment["PATH_INFO"]`).
    public var environment: CGIEnvironment
    /// The request body, read as it arrives (back-pressured: unread chunks stay in the socket).
    public var body: GatewayRequestBody

    public init(head: HTTPRequest, environment: CGIEnvironment, body: GatewayRequestBody = .init()) {
        self.head = head
        self.environment = environment
        self.body = body
    }

    /// The mount point of the application (`SCRIPT_NAME`), "" for a mount at `/`.
    public var scriptName: String { self.environment["SCRIPT_NAME"] ?? "" }
    /// The path below the mount point (`PATH_INFO`).
    public var pathInfo: String { self.environment["PATH_INFO"] ?? "" }
    /// The query string without `?` (`QUERY_STRING`).
    public var queryString: String { self.environment["QUERY_STRING"] ?? "" }
}
