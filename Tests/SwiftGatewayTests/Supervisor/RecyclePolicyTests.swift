import XCTest

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

@testable import SwiftGateway

final class RecyclePolicyTests: XCTestCase {
    private let second: Int64 = 1_000_000_000

    func testNoLimitsNoRecycle() {
        let policy = RecyclePolicy(maximumRequests: 0, restartInterval: 0, inactivityTimeout: 0, processes: 3)
        XCTAssertFalse(policy.isActive)
        let limits = policy.limits(slot: 0, firstOfSlot: true)
        XCTAssertEqual(limits, WorkerLimits(maximumRequests: nil, lifetime: nil))
        let busy = WorkerActivity(requestsServed: 1_000_000, inFlight: 0, lastRequestStart: 1, acceptingSince: 1)
        XCTAssertNil(policy.reason(limits: limits, age: 1e6, activity: busy, now: 1_000_000 * self.second))
    }

    func testTheFirstWorkersOfTheGroupGetStaggeredSharesOfTheLimits() {
        let policy = RecyclePolicy(maximumRequests: 50, restartInterval: 30, inactivityTimeout: 0, processes: 3)
        let first = (0..<3).map { policy.limits(slot: $0, firstOfSlot: true) }
        XCTAssertEqual(first.map(\.maximumRequests), [17, 34, 50])
        XCTAssertEqual(first.map(\.lifetime), [10, 20, 30])
        // Every later worker of a slot gets the whole limit, never more.
        for slot in 0..<3 {
            XCTAssertEqual(
                policy.limits(slot: slot, firstOfSlot: false), WorkerLimits(maximumRequests: 50, lifetime: 30))
        }
    }

    func testAStaggeredShareIsNeverBelowOneRequest() {
        let policy = RecyclePolicy(maximumRequests: 1, restartInterval: 0, inactivityTimeout: 0, processes: 10)
        XCTAssertEqual(policy.limits(slot: 0, firstOfSlot: true).maximumRequests, 1)
        XCTAssertEqual(
            RecyclePolicy(maximumRequests: 5, restartInterval: 0, inactivityTimeout: 0, processes: 1)
                .limits(slot: 0, firstOfSlot: true).maximumRequests, 5)
    }

    func testMaximumRequestsCountsTheRequestsServed() {
        let policy = RecyclePolicy(maximumRequests: 50, restartInterval: 0, inactivityTimeout: 0, processes: 1)
        let limits = policy.limits(slot: 0, firstOfSlot: false)
        func served(_ count: Int) -> WorkerActivity {
            WorkerActivity(requestsServed: count, inFlight: 3, lastRequestStart: 1, acceptingSince: 1)
        }
        XCTAssertNil(policy.reason(limits: limits, age: 1, activity: served(49), now: self.second))
        XCTAssertEqual(
            policy.reason(limits: limits, age: 1, activity: served(50), now: self.second), .maximumRequests(limit: 50))
        XCTAssertEqual(
            policy.reason(limits: limits, age: 1, activity: served(70), now: self.second), .maximumRequests(limit: 50))
        // Without a scoreboard the requests are unknown: no recycle for them.
        XCTAssertNil(policy.reason(limits: limits, age: 1, activity: nil, now: self.second))
    }

    func testRestartIntervalCountsTheWorkersAge() {
        let policy = RecyclePolicy(maximumRequests: 0, restartInterval: 2, inactivityTimeout: 0, processes: 1)
        let limits = policy.limits(slot: 0, firstOfSlot: false)
        XCTAssertNil(policy.reason(limits: limits, age: 1.9, activity: WorkerActivity(), now: self.second))
        XCTAssertEqual(
            policy.reason(limits: limits, age: 2, activity: nil, now: self.second), .restartInterval(limit: 2))
    }

    func testInactivityNeedsNoRequestInFlightAndNoneStartedForTheTimeout() {
        let policy = RecyclePolicy(maximumRequests: 0, restartInterval: 0, inactivityTimeout: 2, processes: 1)
        let limits = policy.limits(slot: 0, firstOfSlot: false)
        let start: Int64 = 100 * self.second
        let idle = WorkerActivity(requestsServed: 5, inFlight: 0, lastRequestStart: start, acceptingSince: 1)
        XCTAssertNil(policy.reason(limits: limits, age: 60, activity: idle, now: start + self.second))
        XCTAssertEqual(
            policy.reason(limits: limits, age: 60, activity: idle, now: start + 3 * self.second),
            .inactivity(idleFor: 3, limit: 2))
        // A request still running (a long one) keeps it busy, however long ago it started.
        var running = idle
        running.inFlight = 1
        XCTAssertNil(policy.reason(limits: limits, age: 60, activity: running, now: start + 60 * self.second))
        // A worker that never served a request is as fresh as a replacement: left alone.
        let fresh = WorkerActivity(requestsServed: 0, inFlight: 0, lastRequestStart: 0, acceptingSince: 1)
        XCTAssertNil(policy.reason(limits: limits, age: 60, activity: fresh, now: start + 60 * self.second))
    }

    func testTheRequestLimitComesBeforeTheOthers() {
        let policy = RecyclePolicy(maximumRequests: 10, restartInterval: 1, inactivityTimeout: 1, processes: 1)
        let limits = policy.limits(slot: 0, firstOfSlot: false)
        let activity = WorkerActivity(requestsServed: 10, inFlight: 0, lastRequestStart: 1, acceptingSince: 1)
        XCTAssertEqual(
            policy.reason(limits: limits, age: 5, activity: activity, now: 10 * self.second),
            .maximumRequests(limit: 10))
    }

    func testReasonsSayWhichLimit() {
        XCTAssertEqual(
            RecycleReason.maximumRequests(limit: 50).description, "maximum-requests reached (50 for this worker)")
        XCTAssertEqual(
            RecycleReason.restartInterval(limit: 2).description, "restart-interval reached (2.0s for this worker)")
        XCTAssertEqual(
            RecycleReason.inactivity(idleFor: 2.04, limit: 2).description,
            "inactivity-timeout reached (idle for 2.0s, limit 2.0s)")
    }

    func testSettingsCarryTheLimits() throws {
        let settings = try GroupSettings(environment: [
            "SWIFT_GATEWAY_PROCESSES": "3", "SWIFT_GATEWAY_MAXIMUM_REQUESTS": "50",
            "SWIFT_GATEWAY_RESTART_INTERVAL": "7", "SWIFT_GATEWAY_INACTIVITY_TIMEOUT": "9",
        ])
        XCTAssertEqual(
            RecyclePolicy(settings: settings),
            RecyclePolicy(maximumRequests: 50, restartInterval: 7, inactivityTimeout: 9, processes: 3))
    }
}

final class ResidentMemoryTests: XCTestCase {
    func testReadsTheResidentPagesOfStatm() {
        XCTAssertEqual(ResidentMemory.bytes(statm: "12345 2560 300 10 0 900 0\n", pageSize: 4096), 2560 * 4096)
        XCTAssertNil(ResidentMemory.bytes(statm: "12345\n", pageSize: 4096))
        XCTAssertNil(ResidentMemory.bytes(statm: "", pageSize: 4096))
        XCTAssertEqual(ResidentMemory.describe(10 * 1_048_576 + 400_000), "10.4 MiB")
        XCTAssertEqual(ResidentMemory.describe(nil), "unknown")
    }

    func testReadsItsOwnProcess() throws {
        let bytes = try XCTUnwrap(ResidentMemory.bytes(ofProcess: getpid()))
        XCTAssertGreaterThan(bytes, 0)
        XCTAssertNil(ResidentMemory.bytes(ofProcess: -1))
    }

    func testMemoryAndCPUComeFirstAndOnlyAboveTheirLimits() {
        let policy = RecyclePolicy(
            maximumRequests: 10, restartInterval: 0, inactivityTimeout: 0, processes: 1, memoryLimit: 64 << 20,
            cpuTimeLimit: 2)
        XCTAssertTrue(policy.isActive)
        XCTAssertEqual(policy.memoryKillThreshold, 96 << 20)
        let limits = policy.limits(slot: 0, firstOfSlot: false)
        let busy = WorkerActivity(requestsServed: 10, inFlight: 0, lastRequestStart: 1, acceptingSince: 1)
        let big = ProcessSample(residentBytes: (64 << 20) + 1, cpuMicroseconds: 3_000_000)
        XCTAssertEqual(
            policy.reason(limits: limits, age: 1, activity: busy, sample: big, now: 1),
            .memoryLimit(resident: (64 << 20) + 1, limit: 64 << 20))
        let hot = ProcessSample(residentBytes: 64 << 20, cpuMicroseconds: 2_000_000)
        XCTAssertEqual(
            policy.reason(limits: limits, age: 1, activity: busy, sample: hot, now: 1),
            .cpuTimeLimit(used: 2, limit: 2))
        let calm = ProcessSample(residentBytes: 64 << 20, cpuMicroseconds: 1_999_999)
        XCTAssertEqual(
            policy.reason(limits: limits, age: 1, activity: busy, sample: calm, now: 1),
            .maximumRequests(limit: 10))
        XCTAssertNil(policy.reason(limits: limits, age: 1, activity: WorkerActivity(), sample: ProcessSample(), now: 1))
        XCTAssertNil(
            RecyclePolicy(maximumRequests: 0, restartInterval: 0, inactivityTimeout: 0, processes: 1)
                .memoryKillThreshold)
    }
}
