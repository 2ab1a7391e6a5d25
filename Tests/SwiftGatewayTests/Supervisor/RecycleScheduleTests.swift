import XCTest

@testable import SwiftGateway

final class RecycleScheduleTests: XCTestCase {
    private func slot(startedAt: Double, due: RecycleReason? = nil, accepting: Bool = true) -> RecycleSchedule.Slot {
        RecycleSchedule.Slot(hasWorker: true, isAccepting: accepting, startedAt: startedAt, due: due)
    }

    func testNothingIsRecycledWhileNoWorkerIsDue() {
        let slots = [self.slot(startedAt: 1), self.slot(startedAt: 2)]
        XCTAssertEqual(RecycleSchedule.decide(slots: slots, recycleUnderWay: false), .nothing)
    }

    func testTheOldestDueWorkerGoesFirst() {
        let due = RecycleReason.maximumRequests(limit: 50)
        let slots = [self.slot(startedAt: 5, due: due), self.slot(startedAt: 3, due: due), self.slot(startedAt: 1)]
        XCTAssertEqual(RecycleSchedule.decide(slots: slots, recycleUnderWay: false), .recycle(slot: 1, reason: due))
    }

    func testOneRecycleAtATime() {
        let due = RecycleReason.restartInterval(limit: 2)
        let slots = [self.slot(startedAt: 1, due: due), self.slot(startedAt: 2, due: due)]
        XCTAssertEqual(RecycleSchedule.decide(slots: slots, recycleUnderWay: true), .nothing)
    }

    func testTheNextRecycleWaitsUntilEverySlotsWorkerAccepts() {
        let due = RecycleReason.restartInterval(limit: 2)
        // The previous recycle's replacement still starts.
        let starting = [self.slot(startedAt: 1, due: due), self.slot(startedAt: 9, accepting: false)]
        XCTAssertEqual(RecycleSchedule.decide(slots: starting, recycleUnderWay: false), .waitForReplacement)
        // A slot whose worker died and waits for its restart.
        let restarting = [
            self.slot(startedAt: 1, due: due),
            RecycleSchedule.Slot(hasWorker: false, isAccepting: false, startedAt: 0, due: nil),
        ]
        XCTAssertEqual(RecycleSchedule.decide(slots: restarting, recycleUnderWay: false), .waitForReplacement)
    }

    func testAWorkerThatDoesNotAcceptYetIsNotRecycled() {
        let due = RecycleReason.restartInterval(limit: 2)
        let slots = [self.slot(startedAt: 1, due: due, accepting: false)]
        XCTAssertEqual(RecycleSchedule.decide(slots: slots, recycleUnderWay: false), .nothing)
    }
}
