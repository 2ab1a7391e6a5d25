import SwiftGateway

extension Gateway {
    /// The CGI variables of the request a `HummingbirdResponder` is serving (`REMOTE_ADDR`,
    /// `REMOTE_USER`, `HTTPS`, `SCRIPT_NAME`, `PATH_INFO`, `SetEnv` values, …), for code that
    /// has only Hummingbird's request and context; nil outside one, as in the same program
    /// running as a plain Hummingbird server.
    ///
    /// The client's address is here, not in the context source's channel, which is the
    /// connection from Apache: `Gateway.requestEnvironment?["REMOTE_ADDR"]`.
    @TaskLocal public static var requestEnvironment: CGIEnvironment?
}
