import XCTest

@testable import SwiftGateway

final class GroupScalingTests: XCTestCase {
    private let second: Int64 = 1_000_000_000

    /// Decisions with their seconds rounded to milliseconds, to compare with literals.
    private func rounded(_ decision: GroupScaling.Decision) -> GroupScaling.Decision {
        func ms(_ seconds: Double) -> Double { (seconds * 1000).rounded() / 1000 }
        switch decision {
        case .nothing: return .nothing
        case .lookAgain(let within): return .lookAgain(within: ms(within))
        case .start(let slot, let busyFor): return .start(slot: slot, busyFor: ms(busyFor))
        case .stop(let slot, let idleFor): return .stop(slot: slot, idleFor: ms(idleFor))
        }
    }

    private func busy() -> GroupScaling.Slot {
        GroupScaling.Slot(isActive: true, isAccepting: true, room: 0, inFlight: 4, idleSince: 0)
    }

    private func idle(since: Int64) -> GroupScaling.Slot {
        GroupScaling.Slot(isActive: true, isAccepting: true, room: 4, inFlight: 0, idleSince: since)
    }

    func testAGroupWithoutRoomToGrowNeverScales() {
        var scaling = GroupScaling(processes: 2, maximumProcesses: 2, idleLimit: 30)
        XCTAssertFalse(scaling.isElastic)
        XCTAssertEqual(
            self.rounded(scaling.decide(slots: [self.busy(), self.busy()], now: 10, nowNanoseconds: 0)), .nothing)
    }

    func testItGrowsOnlyAfterEverySlotStayedBusy() {
        var scaling = GroupScaling(processes: 1, maximumProcesses: 3, idleLimit: 30)
        let slots = [self.busy(), GroupScaling.Slot(), GroupScaling.Slot()]
        XCTAssertEqual(
            self.rounded(scaling.decide(slots: slots, now: 10, nowNanoseconds: 0)), .lookAgain(within: 0.1))
        // A free slot meanwhile starts the wait over.
        var roomy = slots
        roomy[0].room = 1
        XCTAssertEqual(
            self.rounded(scaling.decide(slots: roomy, now: 10.05, nowNanoseconds: 0)), .nothing)
        XCTAssertEqual(
            self.rounded(scaling.decide(slots: slots, now: 10.1, nowNanoseconds: 0)), .lookAgain(within: 0.1))
        XCTAssertEqual(
            self.rounded(scaling.decide(slots: slots, now: 10.2, nowNanoseconds: 0)), .start(slot: 1, busyFor: 0.1))
    }

    func testOneWorkerAtATimeAtMostEveryStartInterval() {
        var scaling = GroupScaling(processes: 1, maximumProcesses: 3, idleLimit: 30)
        _ = scaling.decide(slots: [self.busy(), GroupScaling.Slot(), GroupScaling.Slot()], now: 0, nowNanoseconds: 0)
        XCTAssertEqual(
            self.rounded(
                scaling.decide(
                    slots: [self.busy(), GroupScaling.Slot(), GroupScaling.Slot()], now: 0.1, nowNanoseconds: 0)),
            .start(slot: 1, busyFor: 0.1))
        // While the new worker starts, nothing more.
        let starting = GroupScaling.Slot(isActive: true)
        XCTAssertEqual(
            self.rounded(
                scaling.decide(slots: [self.busy(), starting, GroupScaling.Slot()], now: 0.3, nowNanoseconds: 0)),
            .nothing)
        let both = [self.busy(), self.busy(), GroupScaling.Slot()]
        _ = scaling.decide(slots: both, now: 0.35, nowNanoseconds: 0)
        XCTAssertEqual(
            self.rounded(scaling.decide(slots: both, now: 0.5, nowNanoseconds: 0)), .lookAgain(within: 0.1))
        XCTAssertEqual(
            self.rounded(scaling.decide(slots: both, now: 0.6, nowNanoseconds: 0)), .start(slot: 2, busyFor: 0.25))
        // At maximum-processes it stays.
        XCTAssertEqual(
            self.rounded(scaling.decide(slots: [self.busy(), self.busy(), self.busy()], now: 5, nowNanoseconds: 0)),
            .lookAgain(within: 0.1))
        XCTAssertEqual(
            self.rounded(scaling.decide(slots: [self.busy(), self.busy(), self.busy()], now: 6, nowNanoseconds: 0)),
            .nothing)
    }

    func testAnIdleExtraWorkerExitsButAKeptOneStays() {
        var scaling = GroupScaling(processes: 1, maximumProcesses: 3, idleLimit: 30)
        let now = 100 * self.second
        let slots = [
            self.idle(since: 0), self.idle(since: now - 31 * self.second), self.idle(since: now - 40 * self.second),
        ]
        XCTAssertEqual(
            self.rounded(scaling.decide(slots: slots, now: 100, nowNanoseconds: now)), .stop(slot: 2, idleFor: 40))
        let recent = [self.idle(since: 0), self.idle(since: now - 10 * self.second)]
        XCTAssertEqual(
            self.rounded(scaling.decide(slots: recent, now: 100, nowNanoseconds: now)), .nothing)
        var running = slots
        running[2].inFlight = 1
        XCTAssertEqual(
            self.rounded(scaling.decide(slots: running, now: 100, nowNanoseconds: now)), .stop(slot: 1, idleFor: 31))
    }

    func testATransientGroupStartsOnDemandAndLetsItsLastWorkerGo() {
        var scaling = GroupScaling(processes: 0, maximumProcesses: 1, idleLimit: 3)
        XCTAssertTrue(scaling.startsOnDemand([false]))
        XCTAssertFalse(scaling.startsOnDemand([true]))
        XCTAssertFalse(scaling.isKept(slot: 0))
        let now = 10 * self.second
        XCTAssertEqual(
            self.rounded(
                scaling.decide(slots: [self.idle(since: now - 4 * self.second)], now: 10, nowNanoseconds: now)),
            .stop(slot: 0, idleFor: 4))
    }
}
