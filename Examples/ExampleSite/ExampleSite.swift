import FoundationEssentials
import HTTPTypes
import NIOCore
import SwiftGateway

/// The example site `make run` serves: one page for each thing an application does most.
///
/// Apache gives the program the part of the URL below its `SwiftScriptAlias` as PATH_INFO;
/// every other path (`/`, `/admin/`) is the home page, which names the group that answered.
@main
struct ExampleSite {
    static func main() async throws {
        try await Gateway.run { request, context in
            switch request.pathInfo {
            case "/hello": return text("Hello world!\n")
            case "/json": return try json(request, context: context)
            case "/stream": return stream()
            case "/body": return try await body(request)
            case "/log":
                context.logger.info("the example's /log page was asked for")
                return text("logged a line to Apache's error log\n")
            default:
                return text(
                    "SwiftGateway example site\ngroup: \(context.group)\npages: /hello /json /stream /body /log\n")
            }
        }
    }

    static func text(_ body: String, status: HTTPResponse.Status = .ok) -> GatewayResponse {
        GatewayResponse(
            status: status, headerFields: [.contentType: "text/plain; charset=utf-8"], body: .init(string: body))
    }

    /// A Codable value as JSON.
    static func json(_ request: GatewayRequest, context: GatewayContext) throws -> GatewayResponse {
        struct RequestInfo: Codable {
            var group: String
            var method: String
            var path: String
            var query: String
        }
        let info = RequestInfo(
            group: context.group, method: request.head.method.rawValue,
            path: request.scriptName + request.pathInfo, query: request.queryString
        )
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(info)
        return GatewayResponse(
            status: .ok, headerFields: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: data))
        )
    }

    /// A body written piece by piece: each line reaches the client as it is written.
    static func stream() -> GatewayResponse {
        GatewayResponse(
            status: .ok, headerFields: [.contentType: "text/plain; charset=utf-8"],
            body: .stream { writer in
                for line in 1...10 {
                    try await writer.write("line \(line) of 10\n")
                }
            })
    }

    /// Reads the request body (at most 1 MiB) and says how long it was.
    static func body(_ request: GatewayRequest) async throws -> GatewayResponse {
        do {
            let body = try await request.body.collect(upTo: 1 << 20)
            return text("received \(body.readableBytes) bytes\n")
        } catch is GatewayRequestBodyTooLarge {
            return text("at most 1 MiB, please\n", status: .contentTooLarge)
        }
    }
}
