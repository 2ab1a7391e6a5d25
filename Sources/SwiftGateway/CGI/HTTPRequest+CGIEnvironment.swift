import HTTPTypes

extension HTTPRequest {
    /// Builds the request head from CGI/1.1 variables: `HTTP_*` become header fields,
    /// `CONTENT_TYPE`/`CONTENT_LENGTH` their fields, `REQUEST_URI` the path.
    init(cgiEnvironment environment: CGIEnvironment) throws(GatewayRequestError) {
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
        environment.forEachName { name, index in
            guard let fieldName = Self.headerFieldName(forCGIVariable: name) else { return }
            fields.append(HTTPField(name: fieldName, value: environment.value(at: index)))
        }
        self.init(method: method, scheme: scheme, authority: environment["HTTP_HOST"], path: path, headerFields: fields)
    }

    /// `HTTP_ACCEPT_LANGUAGE` → `accept-language`; `CONTENT_TYPE` and `CONTENT_LENGTH` too.
    static func headerFieldName(forCGIVariable variable: String) -> HTTPField.Name? {
        var variable = variable
        return variable.withUTF8 { Self.headerFieldName(forCGIVariable: UnsafeRawBufferPointer($0)) }
    }

    /// The same for a variable's name as bytes: most variables are not `HTTP_*`, and are
    /// passed over without building a string.
    static func headerFieldName(forCGIVariable name: UnsafeRawBufferPointer) -> HTTPField.Name? {
        guard let first = name.first else { return nil }
        if first == UInt8(ascii: "C") {
            if name.hasSameBytes(as: "CONTENT_TYPE") { return .contentType }
            if name.hasSameBytes(as: "CONTENT_LENGTH") { return .contentLength }
            return nil
        }
        guard first == UInt8(ascii: "H"), name.count > 5, name.startsWithBytes(of: "HTTP_") else { return nil }
        for common in Self.commonFieldNames where name.hasSameBytes(as: common.variable) {
            return common.name
        }
        return Self.makeFieldName(fromHTTPVariable: name)
    }

    /// The field names of headers most requests carry, made once: making one per request is a
    /// string and a validation.
    private static let commonFieldNames: [(variable: [UInt8], name: HTTPField.Name)] = [
        "HTTP_HOST", "HTTP_USER_AGENT", "HTTP_ACCEPT", "HTTP_ACCEPT_ENCODING", "HTTP_ACCEPT_LANGUAGE",
        "HTTP_CONNECTION", "HTTP_COOKIE", "HTTP_REFERER", "HTTP_CACHE_CONTROL", "HTTP_ORIGIN",
        "HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE", "HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO",
        "HTTP_UPGRADE_INSECURE_REQUESTS", "HTTP_SEC_FETCH_SITE", "HTTP_SEC_FETCH_MODE", "HTTP_SEC_FETCH_DEST",
    ].compactMap { (variable: String) in
        let bytes = Array(variable.utf8)
        return bytes.withUnsafeBytes { Self.makeFieldName(fromHTTPVariable: $0) }.map { (variable: bytes, name: $0) }
    }

    /// `HTTP_X_Y` → `x-y`; nil when the rest is not a valid field name.
    private static func makeFieldName(fromHTTPVariable name: UnsafeRawBufferPointer) -> HTTPField.Name? {
        let fieldName = String(unsafeUninitializedCapacity: name.count - 5) { target in
            // Byte by byte: a field name is ASCII (HTTPField.Name refuses anything else).
            for (index, byte) in name.dropFirst(5).enumerated() {
                target[index] =
                    switch byte {
                    case UInt8(ascii: "_"): UInt8(ascii: "-")
                    case UInt8(ascii: "A")...UInt8(ascii: "Z"): byte + 32
                    default: byte
                    }
            }
            return name.count - 5
        }
        return HTTPField.Name(fieldName)
    }
}
