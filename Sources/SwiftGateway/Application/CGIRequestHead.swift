import HTTPTypes

extension HTTPRequest {
    /// Builds the request head from CGI/1.1 variables: `HTTP_*` become header fields,
    /// `CONTENT_TYPE`/`CONTENT_LENGTH` their fields, `REQUEST_URI` the path.
    init(cgiEnvironment environment: [String: String]) throws(GatewayRequestError) {
        guard let methodName = environment["REQUEST_METHOD"], let method = HTTPRequest.Method(methodName) else {
            throw GatewayRequestError(description: "missing or invalid REQUEST_METHOD")
        }
        let scheme = environment["HTTPS"].map { $0.lowercased() == "on" || $0 == "1" } == true ? "https" : "http"
        var path = environment["REQUEST_URI"] ?? ""
        if path.isEmpty {
            path = (environment["SCRIPT_NAME"] ?? "") + (environment["PATH_INFO"] ?? "")
            if let query = environment["QUERY_STRING"], !query.isEmpty { path += "?" + query }
            if path.isEmpty { path = "/" }
        }
        var fields = HTTPFields()
        for (name, value) in environment {
            guard let fieldName = Self.headerFieldName(forCGIVariable: name) else { continue }
            fields.append(HTTPField(name: fieldName, value: value))
        }
        self.init(method: method, scheme: scheme, authority: environment["HTTP_HOST"], path: path, headerFields: fields)
    }

    /// `HTTP_ACCEPT_LANGUAGE` → `accept-language`; `CONTENT_TYPE` and `CONTENT_LENGTH` too.
    static func headerFieldName(forCGIVariable variable: String) -> HTTPField.Name? {
        switch variable {
        case "CONTENT_TYPE": return .contentType
        case "CONTENT_LENGTH": return .contentLength
        default:
            guard variable.hasPrefix("HTTP_"), variable.count > 5 else { return nil }
            let name = variable.dropFirst(5).lowercased().replacingOccurrences(of: "_", with: "-")
            return HTTPField.Name(name)
        }
    }
}

extension String {
    fileprivate func replacingOccurrences(of target: Character, with replacement: Character) -> String {
        String(self.map { $0 == target ? replacement : $0 })
    }
}

/// A request that cannot be turned into an `HTTPRequest`.
public struct GatewayRequestError: Error, CustomStringConvertible, Sendable {
    public var description: String
}
