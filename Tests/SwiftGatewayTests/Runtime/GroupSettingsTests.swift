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
        XCTAssertEqual(settings.maximumRequests, 0, "no recycling unless Apache passes a limit")
        XCTAssertEqual(settings.restartInterval, 0)
        XCTAssertEqual(settings.inactivityTimeout, 0)
    }

    func testReadsTheVariablesApacheSets() throws {
        let settings = try GroupSettings(environment: [
            "SWIFT_GATEWAY_GROUP": "admin", "SWIFT_GATEWAY_PROCESSES": "3", "SWIFT_GATEWAY_THREADS": "10",
            "SWIFT_GATEWAY_TOKEN": "abc", "SWIFT_GATEWAY_PEER_UID": "33", "SWIFT_GATEWAY_SHUTDOWN_TIMEOUT": "2.5",
            "SWIFT_GATEWAY_QUEUE_TIMEOUT": "45", "SWIFT_GATEWAY_MAXIMUM_REQUESTS": "50",
            "SWIFT_GATEWAY_RESTART_INTERVAL": "7", "SWIFT_GATEWAY_INACTIVITY_TIMEOUT": "9",
        ])
        XCTAssertEqual(settings.group, "admin")
        XCTAssertEqual(settings.processes, 3)
        XCTAssertEqual(settings.threads, 10)
        XCTAssertEqual(settings.token, "abc")
        XCTAssertEqual(settings.peerUID, 33)
        XCTAssertEqual(settings.shutdownTimeout, 2.5)
        XCTAssertEqual(settings.queueTimeout, 45)
        XCTAssertEqual(settings.maximumRequests, 50)
        XCTAssertEqual(settings.restartInterval, 7)
        XCTAssertEqual(settings.inactivityTimeout, 9)
    }

    func testRejectsMalformedValues() {
        XCTAssertThrowsError(try GroupSettings(environment: ["SWIFT_GATEWAY_THREADS": "0"]))
        XCTAssertThrowsError(try GroupSettings(environment: ["SWIFT_GATEWAY_PROCESSES": "x"]))
        XCTAssertThrowsError(try GroupSettings(environment: ["SWIFT_GATEWAY_PEER_UID": "-1"]))
        XCTAssertThrowsError(try GroupSettings(environment: ["SWIFT_GATEWAY_GRACEFUL_TIMEOUT": "nan"]))
        XCTAssertThrowsError(try GroupSettings(environment: ["SWIFT_GATEWAY_MAXIMUM_REQUESTS": "-1"]))
        XCTAssertThrowsError(try GroupSettings(environment: ["SWIFT_GATEWAY_RESTART_INTERVAL": "soon"]))
        XCTAssertThrowsError(try GroupSettings(environment: ["SWIFT_GATEWAY_INACTIVITY_TIMEOUT": "-2"]))
    }

    func testRoleComesFromTheEnvironment() {
        XCTAssertEqual(GatewayRole.current(environment: ["SWIFT_GATEWAY_ROLE": "supervisor"]), .supervisor)
        XCTAssertEqual(GatewayRole.current(environment: ["SWIFT_GATEWAY_ROLE": "worker"]), .worker)
        XCTAssertEqual(GatewayRole.current(environment: [:]), .unmanaged)
    }
}
