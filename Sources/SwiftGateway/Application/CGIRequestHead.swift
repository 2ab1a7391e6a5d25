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
        let utf8 = variable.utf8
        guard let first = utf8.first else { return nil }
        if first == UInt8(ascii: "C") {
            switch variable {
            case "CONTENT_TYPE": return .contentType
            case "CONTENT_LENGTH": return .contentLength
            default: return nil
            }
        }
        // Most variables are not HTTP_*: decide on the bytes, before any String is built.
        guard first == UInt8(ascii: "H"), utf8.count > 5, utf8.starts(with: "HTTP_".utf8) else { return nil }
        let name = String(unsafeUninitializedCapacity: utf8.count - 5) { target in
            // Byte by byte: a field name is ASCII (HTTPField.Name refuses anything else).
            for (index, byte) in utf8.dropFirst(5).enumerated() {
                target[index] = switch byte {
                case UInt8(ascii: "_"): UInt8(ascii: "-")
                case UInt8(ascii: "A")...UInt8(ascii: "Z"): byte + 32
                default: byte
                }
            }
            return utf8.count - 5
        }
        return HTTPField.Name(name)
    }
}

/// A request that cannot be turned into an `HTTPRequest`.
public struct GatewayRequestError: Error, CustomStringConvertible, Sendable {
    public var description: String
}
