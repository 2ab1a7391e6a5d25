import Logging
import NIOEmbedded
import XCTest

@testable import SwiftGateway

final class GatewayContextTests: XCTestCase {
    func testTheRequestLoggerIsMadeOnDemandAndKeptOnceSet() {
        let channel = EmbeddedChannel()
        // An EmbeddedChannel and its pipeline hold each other until it is finished.
        defer { _ = try? channel.finish() }
        var context = GatewayContext(channel: channel, group: "site", requestID: "abc")
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

    func testTheConnectionIsThereForTheGatewaysContextsAndKeptWithAChangedLogger() {
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        var fastCGI = GatewayContext(channel: channel, group: "site", requestID: "abc")
        XCTAssertTrue(fastCGI.channel === channel)
        fastCGI.logger = Logger(label: "mine")
        XCTAssertTrue(fastCGI.channel === channel)
        let given = GatewayContext(
            logger: Logger(label: "given"), group: "standalone", requestID: "1", channel: channel)
        XCTAssertTrue(given.channel === channel)
        XCTAssertNil(GatewayContext(logger: Logger(label: "given"), group: "standalone", requestID: "1").channel)
    }
}
