import Logging
import XCTest

@testable import SwiftGateway

final class ApacheLogLevelTests: XCTestCase {
    func testEachSwiftLogLevelHasItsApacheLevel() {
        let names = Logger.Level.allCases.map { "\($0)=\(ApacheLogLevel.name(of: $0))" }
        XCTAssertEqual(
            names,
            [
                "trace=debug", "debug=debug", "info=info", "notice=notice", "warning=warn", "error=error",
                "critical=crit",
            ])
    }

    func testTheThresholdKeepsExactlyTheLinesApacheKeeps() throws {
        // Apache's levels, most severe first, and the swift-log levels whose lines it logs.
        let apacheOrder = ["emerg", "alert", "crit", "error", "warn", "notice", "info", "debug"]
        for (rank, apacheLevel) in apacheOrder.enumerated() {
            let threshold = try XCTUnwrap(ApacheLogLevel.threshold(forApacheLevel: apacheLevel))
            for level in Logger.Level.allCases {
                let lineRank = try XCTUnwrap(apacheOrder.firstIndex(of: ApacheLogLevel.name(of: level)))
                let apacheKeeps = lineRank <= rank
                let sent = level >= threshold
                // A line Apache keeps is always sent; at alert and emerg, crit lines are sent and
                // dropped by the module (swift-log has nothing above critical).
                XCTAssertTrue(!apacheKeeps || sent, "\(level) at LogLevel \(apacheLevel) must be sent")
                if apacheLevel != "alert" && apacheLevel != "emerg" {
                    XCTAssertEqual(sent, apacheKeeps, "\(level) at LogLevel \(apacheLevel)")
                }
            }
        }
        XCTAssertEqual(ApacheLogLevel.threshold(forApacheLevel: "trace5"), .trace)
        XCTAssertNil(ApacheLogLevel.threshold(forApacheLevel: "verbose"))
        XCTAssertNil(ApacheLogLevel.threshold(forApacheLevel: ""))
    }

    func testGroupSettingsReadTheModulesLogLevel() throws {
        XCTAssertEqual(try GroupSettings(environment: [:]).logLevel, .info)
        XCTAssertEqual(try GroupSettings(environment: ["SWIFT_GATEWAY_LOG_LEVEL": "warn"]).logLevel, .warning)
        XCTAssertEqual(try GroupSettings(environment: ["SWIFT_GATEWAY_LOG_LEVEL": "trace1"]).logLevel, .trace)
        XCTAssertThrowsError(try GroupSettings(environment: ["SWIFT_GATEWAY_LOG_LEVEL": "loud"]))
    }
}
