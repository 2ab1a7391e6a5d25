import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// CGI/1.1 variables for a request Apache did not see, built the way Apache builds them.
enum StandaloneCGIVariables {
    static func make(for head: HTTPRequestHead, local: SocketAddress?, remote: SocketAddress?) -> CGIEnvironment {
        var environment: [String: String] = [
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_SOFTWARE": "SwiftGateway",
            "SERVER_PROTOCOL": "HTTP/\(head.version.major).\(head.version.minor)",
            "REQUEST_METHOD": head.method.rawValue,
            "REQUEST_URI": head.uri,
            "SCRIPT_NAME": "",
        ]
        let path: Substring
        if let question = head.uri.firstIndex(of: "?") {
            path = head.uri[..<question]
            environment["QUERY_STRING"] = String(head.uri[head.uri.index(after: question)...])
        } else {
            path = Substring(head.uri)
            environment["QUERY_STRING"] = ""
        }
        environment["PATH_INFO"] = percentDecoded(path)
        for (name, value) in head.headers {
            // Like Apache: names with '_' could pose as other headers, and Proxy is httpoxy.
            guard !name.contains("_"), name.lowercased() != "proxy" else { continue }
            let key: String
            switch name.lowercased() {
            case "content-type": key = "CONTENT_TYPE"
            case "content-length": key = "CONTENT_LENGTH"
            case "authorization": continue
            default: key = "HTTP_" + String(name.uppercased().map { $0 == "-" ? "_" : $0 })
            }
            environment[key] = environment[key].map { $0 + ", " + value } ?? value
        }
        if let remote {
            environment["REMOTE_ADDR"] = remote.ipAddress ?? "unix"
            environment["REMOTE_PORT"] = remote.port.map(String.init) ?? ""
        }
        if let local {
            environment["SERVER_ADDR"] = local.ipAddress ?? ""
            environment["SERVER_PORT"] = local.port.map(String.init) ?? ""
        }
        environment["SERVER_NAME"] =
            head.headers.first(name: "host").map { host in
                String(host.split(separator: ":").first ?? Substring(host))
            } ?? environment["SERVER_ADDR"]
        environment["SWIFT_GATEWAY_REQUEST_ID"] = String(Self.nextRequestNumber())
        return CGIEnvironment(environment.sorted(by: { $0.key < $1.key }).lazy.map { (name: $0.key, value: $0.value) })
    }

    private static let lock = NIOLockedValueBox(0)

    private static func nextRequestNumber() -> Int {
        lock.withLockedValue { value in
            value += 1
            return value
        }
    }

    /// `%2F` → `/`; malformed escapes stay as they are, like Apache's `ap_unescape_url` would refuse them.
    static func percentDecoded(_ text: Substring) -> String {
        guard text.contains("%") else { return String(text) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = Array(text.utf8)[...]
        while let byte = iterator.popFirst() {
            if byte == UInt8(ascii: "%"), iterator.count >= 2,
                let high = hexValue(iterator[iterator.startIndex]),
                let low = hexValue(iterator[iterator.startIndex + 1])
            {
                bytes.append(high << 4 | low)
                iterator = iterator.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
