import Logging
import NIOCore
import NIOEmbedded
import XCTest

@testable import SwiftGateway

final class FastCGIStandardErrorLogHandlerTests: XCTestCase {
    private func loggedLine(_ log: (Logger) -> Void, requestID: String? = "r1") throws -> String {
        let channel = EmbeddedChannel()
        let logger = Logger(label: "app") { _ in FastCGIStandardErrorLogHandler(channel: channel, requestID: requestID)
        }
        log(logger)
        guard case .stderr(let buffer) = try XCTUnwrap(try channel.readOutbound(as: FastCGIResponsePart.self)) else {
            XCTFail("not a STDERR part")
            return ""
        }
        return String(buffer: buffer)
    }

    func testTheRequestIDIsMetadata() throws {
        XCTAssertEqual(try self.loggedLine { $0.info("hi") }, "info: hi request=r1\n")
        XCTAssertEqual(try self.loggedLine({ $0.info("hi") }, requestID: nil), "info: hi\n")
    }

    func testOtherMetadataJoinsTheRequestID() throws {
        let line = try self.loggedLine { logger in
            var logger = logger
            logger[metadataKey: "user"] = "ann"
            XCTAssertEqual(logger[metadataKey: "request"], "r1")
            logger.warning("x", metadata: ["n": "1"])
        }
        XCTAssertEqual(line, "warn: x n=1 request=r1 user=ann\n")
    }

    func testTheApplicationMayReplaceOrRemoveTheRequestID() throws {
        XCTAssertEqual(
            try self.loggedLine { logger in
                var logger = logger
                logger[metadataKey: "request"] = "mine"
                logger.info("x")
            },
            "info: x request=mine\n"
        )
        XCTAssertEqual(
            try self.loggedLine { logger in
                var logger = logger
                logger[metadataKey: "request"] = nil
                logger.info("x")
            },
            "info: x\n"
        )
    }
}
