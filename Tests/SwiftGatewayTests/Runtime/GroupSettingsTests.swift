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
        XCTAssertEqual(settings.requestTimeout, 60)
        XCTAssertEqual(settings.startupTimeout, 15)
        XCTAssertEqual(settings.memoryLimit, 0)
        XCTAssertEqual(settings.virtualMemoryLimit, 0)
        XCTAssertEqual(settings.cpuTimeLimit, 0)
        XCTAssertEqual(settings.executor, .eventLoop)
        XCTAssertEqual(settings.maximumProcesses, 1)
        XCTAssertTrue(settings.reload)
        XCTAssertNil(settings.programPath)
        XCTAssertNil(settings.restartFile)
        XCTAssertNil(settings.affinityCookie, "no affinity unless Apache passes a cookie name")
    }

    func testReadsTheAffinityCookie() throws {
        XCTAssertEqual(
            try GroupSettings(environment: ["SWIFT_GATEWAY_AFFINITY_COOKIE": "SGROUTE"]).affinityCookie, "SGROUTE")
        XCTAssertNil(try GroupSettings(environment: ["SWIFT_GATEWAY_AFFINITY_COOKIE": ""]).affinityCookie)
    }

    func testReadsDeploymentAndScaling() throws {
        let settings = try GroupSettings(environment: [
            "SWIFT_GATEWAY_PROCESSES": "2", "SWIFT_GATEWAY_MAXIMUM_PROCESSES": "5",
            "SWIFT_GATEWAY_PROGRAM": "/srv/app/App", "SWIFT_GATEWAY_RELOAD": "0",
            "SWIFT_GATEWAY_RESTART_FILE": "/srv/app/restart.txt",
        ])
        XCTAssertEqual(settings.maximumProcesses, 5)
        XCTAssertEqual(settings.programPath, "/srv/app/App")
        XCTAssertFalse(settings.reload)
        XCTAssertEqual(settings.restartFile, "/srv/app/restart.txt")
        // A transient group may still run one worker; the maximum is never below processes.
        let transient = try GroupSettings(environment: ["SWIFT_GATEWAY_PROCESSES": "0"])
        XCTAssertEqual(transient.processes, 0)
        XCTAssertEqual(transient.maximumProcesses, 1)
        let clamped = try GroupSettings(environment: [
            "SWIFT_GATEWAY_PROCESSES": "3", "SWIFT_GATEWAY_MAXIMUM_PROCESSES": "2",
        ])
        XCTAssertEqual(clamped.maximumProcesses, 3)
        XCTAssertThrowsError(try GroupSettings(environment: ["SWIFT_GATEWAY_RELOAD": "yes"]))
    }

    func testReadsTheLimits() throws {
        let settings = try GroupSettings(environment: [
            "SWIFT_GATEWAY_REQUEST_TIMEOUT": "3", "SWIFT_GATEWAY_STARTUP_TIMEOUT": "2",
            "SWIFT_GATEWAY_MEMORY_LIMIT": "67108864", "SWIFT_GATEWAY_VIRTUAL_MEMORY_LIMIT": "4294967296",
            "SWIFT_GATEWAY_CPU_TIME_LIMIT": "2", "SWIFT_GATEWAY_EXECUTOR": "thread-pool",
        ])
        XCTAssertEqual(settings.requestTimeout, 3)
        XCTAssertEqual(settings.startupTimeout, 2)
        XCTAssertEqual(settings.memoryLimit, 64 << 20)
        XCTAssertEqual(settings.virtualMemoryLimit, 4 << 30)
        XCTAssertEqual(settings.cpuTimeLimit, 2)
        XCTAssertEqual(settings.executor, .threadPool)
        XCTAssertThrowsError(try GroupSettings(environment: ["SWIFT_GATEWAY_EXECUTOR": "fast"]))
        XCTAssertThrowsError(try GroupSettings(environment: ["SWIFT_GATEWAY_MEMORY_LIMIT": "64M"]))
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
