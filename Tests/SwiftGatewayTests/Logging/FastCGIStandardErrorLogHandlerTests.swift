import Logging
import NIOCore
import NIOEmbedded
import XCTest

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

@testable import SwiftGateway

final class FastCGIStandardErrorLogHandlerTests: XCTestCase {
    private static let pid = String(getpid())

    private func loggedLines(
        _ log: (Logger) -> Void, requestID: String? = "r1", group: String? = nil, logLevel: Logger.Level = .info
    ) throws -> [String] {
        let channel = EmbeddedChannel()
        // An EmbeddedChannel and its pipeline hold each other until it is finished.
        defer { _ = try? channel.finish() }
        let logger = Logger(label: "app") { _ in
            FastCGIStandardErrorLogHandler(channel: channel, requestID: requestID, group: group, logLevel: logLevel)
        }
        log(logger)
        var lines: [String] = []
        while let part = try channel.readOutbound(as: FastCGIResponsePart.self) {
            guard case .stderr(let buffer) = part else {
                XCTFail("not a STDERR part")
                return lines
            }
            lines.append(String(buffer: buffer))
        }
        return lines
    }

    private func loggedLine(_ log: (Logger) -> Void, requestID: String? = "r1") throws -> String {
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
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
        XCTAssertEqual(try self.loggedLine { $0.info("hi") }, "info: hi pid=\(Self.pid) request=r1\n")
        XCTAssertEqual(try self.loggedLine({ $0.info("hi") }, requestID: nil), "info: hi pid=\(Self.pid)\n")
    }

    func testOtherMetadataJoinsTheRequestID() throws {
        let line = try self.loggedLine { logger in
            var logger = logger
            logger[metadataKey: "user"] = "ann"
            XCTAssertEqual(logger[metadataKey: "request"], "r1")
            logger.warning("x", metadata: ["n": "1"])
        }
        XCTAssertEqual(line, "warn: x n=1 pid=\(Self.pid) request=r1 user=ann\n")
    }

    func testTheApplicationMayReplaceOrRemoveTheRequestID() throws {
        XCTAssertEqual(
            try self.loggedLine { logger in
                var logger = logger
                logger[metadataKey: "request"] = "mine"
                logger.info("x")
            },
            "info: x pid=\(Self.pid) request=mine\n"
        )
        XCTAssertEqual(
            try self.loggedLine { logger in
                var logger = logger
                logger[metadataKey: "request"] = nil
                logger[metadataKey: "pid"] = nil
                logger.info("x")
            },
            "info: x\n"
        )
    }

    func testEachLineNamesItsApacheLevelAndCarriesGroupPidAndRequest() throws {
        let lines = try self.loggedLines(
            { logger in
                logger.trace("t")
                logger.debug("d")
                logger.info("i")
                logger.notice("n")
                logger.warning("w")
                logger.error("e")
                logger.critical("c")
            }, group: "site", logLevel: .trace)
        let tail = " group=site pid=\(Self.pid) request=r1\n"
        XCTAssertEqual(
            lines,
            ["debug: t", "debug: d", "info: i", "notice: n", "warn: w", "error: e", "crit: c"].map { $0 + tail })
    }

    func testLinesBelowTheModulesLogLevelAreNotSent() throws {
        let lines = try self.loggedLines(
            { logger in
                logger.debug("d")
                logger.info("i")
                logger.warning("w")
            }, requestID: nil, logLevel: .warning)
        XCTAssertEqual(lines, ["warn: w pid=\(Self.pid)\n"])
    }
}
