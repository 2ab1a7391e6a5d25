import Logging
import NIOEmbedded
import XCTest

@testable import SwiftGateway

final class GatewayContextTests: XCTestCase {
    func testTheRequestLoggerIsMadeOnDemandAndKeptOnceSet() {
        var context = GatewayContext(channel: EmbeddedChannel(), group: "site", requestID: "abc")
        XCTAssertEqual(context.logger.label, "app")
        XCTAssertEqual(context.logger[metadataKey: "request"], "abc")
        // Changed through the property: the changed one is kept, not made again.
        context.logger[metadataKey: "user"] = "ann"
        XCTAssertEqual(context.logger[metadataKey: "user"], "ann")
        XCTAssertEqual(context.logger[metadataKey: "request"], "abc")
        context.logger = Logger(label: "mine")
        XCTAssertEqual(context.logger.label, "mine")
    }

    func testAGivenLoggerIsReturnedAsGiven() {
        let context = GatewayContext(logger: Logger(label: "given"), group: "standalone", requestID: "1")
        XCTAssertEqual(context.logger.label, "given")
        XCTAssertEqual(context.requestID, "1")
    }
}
