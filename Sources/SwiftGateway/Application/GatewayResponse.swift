import HTTPTypes
import NIOCore

/// What the application answers: status, header fields and a body.
public struct GatewayResponse: Sendable {
    public var status: HTTPResponse.Status
    public var headerFields: HTTPFields
    public var body: GatewayResponseBody

    public init(status: HTTPResponse.Status = .ok, headerFields: HTTPFields = [:], body: GatewayResponseBody = .init())
    {
        self.status = status
        self.headerFields = headerFields
        self.body = body
    }
}
