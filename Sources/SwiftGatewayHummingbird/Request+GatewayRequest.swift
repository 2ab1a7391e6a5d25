import Hummingbird
import SwiftGateway

extension Request {
    /// The gateway's request as Hummingbird's: the same head (its path is the whole `REQUEST_URI`,
    /// as a Hummingbird server started by hand sees it) and the body read from the gateway as
    /// the application reads it, with the gateway's back-pressure.
    public init(_ request: GatewayRequest) {
        self.init(head: request.head, body: RequestBody(asyncSequence: request.body))
    }
}
