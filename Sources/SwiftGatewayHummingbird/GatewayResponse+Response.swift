import Hummingbird
import NIOCore
import SwiftGateway

extension GatewayResponse {
    /// Bodies of at most this many bytes (by the length the response declares) are written into
    /// one buffer before the response is returned: the gateway then sends head and body together.
    /// Longer ones, and those of unknown length, are streamed.
    public static let hummingbirdCollectedBodyLimit = 64 * 1024

    /// Hummingbird's response as the gateway's: status, header fields (with the `Content-Length`
    /// Hummingbird set for a body of known length) and the body. Trailing header fields a body
    /// writer gives to `finish` are dropped: the gateway's CGI response has none.
    public init(_ response: Response) async throws {
        let body = response.body
        if let length = body.contentLength, length <= Self.hummingbirdCollectedBodyLimit {
            let collected = CollectedResponseBody()
            try await body.write(CollectingResponseBodyWriter(into: collected))
            self.init(
                status: response.status, headerFields: response.headers, body: .init(byteBuffer: collected.buffer))
        } else {
            self.init(
                status: response.status, headerFields: response.headers,
                body: .stream { writer in try await body.write(GatewayResponseBodyWriterAdapter(writer)) })
        }
    }
}
