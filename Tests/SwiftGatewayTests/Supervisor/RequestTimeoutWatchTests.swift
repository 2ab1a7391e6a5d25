import XCTest

@testable import SwiftGateway

final class RequestTimeoutWatchTests: XCTestCase {
    private let second: Int64 = 1_000_000_000

    func testARequestIsCancelledOnceThenFoundStuckOnce() {
        var watch = RequestTimeoutWatch(timeout: 3)
        let running = [(slot: 2, started: 10 * self.second)]
        XCTAssertEqual(watch.review(pid: 7, running: running, now: 12 * self.second), [])
        XCTAssertEqual(watch.nextDeadline(pid: 7, running: running), 13 * self.second)
        XCTAssertEqual(
            watch.review(pid: 7, running: running, now: 13 * self.second),
            [.cancel(slot: 2, started: 10 * self.second, ranFor: 3)])
        XCTAssertEqual(watch.review(pid: 7, running: running, now: 13 * self.second + 1), [], "cancelled once")
        XCTAssertEqual(watch.nextDeadline(pid: 7, running: running), 14 * self.second)
        XCTAssertEqual(
            watch.review(pid: 7, running: running, now: 14 * self.second),
            [.stuck(slot: 2, started: 10 * self.second, ranFor: 4)])
        XCTAssertEqual(watch.review(pid: 7, running: running, now: 20 * self.second), [], "found stuck once")
        XCTAssertNil(watch.nextDeadline(pid: 7, running: []))
    }

    func testARequestThatEndsIsForgottenAndTheNextInItsSlotTimedAfresh() {
        var watch = RequestTimeoutWatch(timeout: 1)
        _ = watch.review(pid: 1, running: [(slot: 0, started: 0)], now: self.second)
        XCTAssertEqual(watch.review(pid: 1, running: [], now: self.second + 5), [])
        let next = [(slot: 0, started: self.second + 10)]
        XCTAssertEqual(watch.review(pid: 1, running: next, now: 2 * self.second), [])
        XCTAssertEqual(
            watch.review(pid: 1, running: next, now: 2 * self.second + 10),
            [.cancel(slot: 0, started: self.second + 10, ranFor: 1)])
    }

    func testWorkersAreApartAndOffMeansNothing() {
        var watch = RequestTimeoutWatch(timeout: 1)
        let running = [(slot: 0, started: Int64(0))]
        XCTAssertEqual(watch.review(pid: 1, running: running, now: self.second).count, 1)
        XCTAssertEqual(watch.review(pid: 2, running: running, now: self.second).count, 1)
        watch.forget(pid: 1)
        XCTAssertEqual(watch.review(pid: 1, running: running, now: self.second).count, 1, "forgotten: cancelled anew")
        var off = RequestTimeoutWatch(timeout: 0)
        XCTAssertEqual(off.review(pid: 1, running: running, now: 1000 * self.second), [])
        XCTAssertNil(off.nextDeadline(pid: 1, running: running))
    }
}
