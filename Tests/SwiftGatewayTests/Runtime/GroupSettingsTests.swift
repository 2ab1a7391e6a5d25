import XCTest

@testable import SwiftGateway

final class GroupSettingsTests: XCTestCase {
    func testDefaults() throws {
        let settings = try GroupSettings(environment: [:])
        XCTAssertEqual(settings.processes, 1)
        XCTAssertEqual(settings.threads, 15)
        XCTAssertEqual(settings.listenBacklog, 128)
        XCTAssertNil(settings.token)
        XCTAssertNil(settings.peerUID)
        XCTAssertEqual(settings.queueTimeout, 0, "no queue-timeout unless Apache passes one")
    }

    func testReadsTheVariablesApacheSets() throws {
        let settings = try GroupSettings(environment: [
            "SWIFT_GATEWAY_GROUP": "admin", "SWIFT_GATEWAY_PROCESSES": "3", "SWIFT_GATEWAY_THREADS": "10",
            "SWIFT_GATEWAY_TOKEN": "abc", "SWIFT_GATEWAY_PEER_UID": "33", "SWIFT_GATEWAY_SHUTDOWN_TIMEOUT": "2.5",
            "SWIFT_GATEWAY_QUEUE_TIMEOUT": "45",
        ])
        XCTAssertEqual(settings.group, "admin")
        XCTAssertEqual(settings.processes, 3)
        XCTAssertEqual(settings.threads, 10)
        XCTAssertEqual(settings.token, "abc")
        XCTAssertEqual(settings.peerUID, 33)
        XCTAssertEqual(settings.shutdownTimeout, 2.5)
        XCTAssertEqual(settings.queueTimeout, 45)
    }

    func testRejectsMalformedValues() {
        XCTAssertThrowsError(try GroupSettings(environment: ["SWIFT_GATEWAY_THREADS": "0"]))
        XCTAssertThrowsError(try GroupSettings(environment: ["SWIFT_GATEWAY_PROCESSES": "x"]))
        XCTAssertThrowsError(try GroupSettings(environment: ["SWIFT_GATEWAY_PEER_UID": "-1"]))
        XCTAssertThrowsError(try GroupSettings(environment: ["SWIFT_GATEWAY_GRACEFUL_TIMEOUT": "nan"]))
    }

    func testRoleComesFromTheEnvironment() {
        XCTAssertEqual(GatewayRole.current(environment: ["SWIFT_GATEWAY_ROLE": "supervisor"]), .supervisor)
        XCTAssertEqual(GatewayRole.current(environment: ["SWIFT_GATEWAY_ROLE": "worker"]), .worker)
        XCTAssertEqual(GatewayRole.current(environment: [:]), .unmanaged)
    }
}
