import HTTPTypes

/// The `Set-Cookie` field that pins a client to this worker (`affinity-cookie=NAME`).
///
/// The worker sets it on the responses to requests that came through the group socket: those
/// did not carry a valid route to it (Apache sends those to its own socket), and only the worker
/// knows it answered (the group socket's peer, for Apache, is Apache's parent).
struct RouteCookie: Sendable {
    let name: String
    let route: WorkerRoute

    /// `NAME=<route>; Path=<mount>; HttpOnly; SameSite=Lax`, and `; Secure` over HTTPS.
    func field(for environment: CGIEnvironment) -> HTTPField {
        let secure = environment["HTTPS"]?.lowercased() == "on" || environment["REQUEST_SCHEME"] == "https"
        let path = Self.cookiePath(scriptName: environment["SCRIPT_NAME"])
        return HTTPField(
            name: .setCookie,
            value: "\(self.name)=\(self.route.text); Path=\(path); HttpOnly; SameSite=Lax\(secure ? "; Secure" : "")")
    }

    /// The mount (`SCRIPT_NAME`), or `/` at the root or when it holds what a cookie's `Path`
    /// cannot (a `;`, a control character, a space: RFC 6265's path-value).
    static func cookiePath(scriptName: String?) -> String {
        guard let scriptName, scriptName.hasPrefix("/"),
            scriptName.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ";") })
        else { return "/" }
        return scriptName
    }
}
