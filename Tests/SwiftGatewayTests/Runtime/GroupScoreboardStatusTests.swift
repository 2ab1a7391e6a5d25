import XCTest

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

import CSwiftGatewayLinux

@testable import SwiftGateway

/// What the board holds for Apache's status page: the board Apache's parent makes, each running
/// request's path, the queue, and the supervisor's counters.
final class GroupScoreboardStatusTests: XCTestCase {
    /// A board as Apache's parent makes it: a memfd of the group's size with the header written.
    private func apacheBoard(maximumProcesses: Int, requestSlots: Int) -> (descriptor: CInt, entries: Int) {
        let entries = GroupScoreboard.entryCount(maximumProcesses: maximumProcesses)
        let descriptor = sg_shared_memory_create(
            "swift-gateway-scoreboard", sg_scoreboard_bytes(CInt(entries), CInt(requestSlots)))
        var header = sg_scoreboard_header()
        sg_scoreboard_header_init(&header, CInt(entries), CInt(requestSlots), 1, CInt(maximumProcesses))
        XCTAssertEqual(pwrite(descriptor, &header, MemoryLayout<sg_scoreboard_header>.size, 0), 192)
        return (descriptor, entries)
    }

    func testASupervisorTakesTheBoardApacheMadeAndKeepsItsDescriptor() throws {
        let (descriptor, entries) = self.apacheBoard(maximumProcesses: 2, requestSlots: 4)
        defer { close(descriptor) }
        let board = try GroupScoreboard.adoptApacheBoard(descriptor: descriptor, workers: entries, requestSlots: 4)
        XCTAssertEqual(fcntl(descriptor, F_GETFD), FD_CLOEXEC, "kept open for the workers, close-on-exec")
        board.takeOver(supervisorPID: 77, startedUnixMicroseconds: 1)
        XCTAssertEqual(board.counters().supervisorPID, 77)
        // A worker maps it as from the supervisor's own board.
        let worker = try XCTUnwrap(
            GroupScoreboard.adopt(descriptor: dup(descriptor), workers: entries, requestSlots: 4))
        worker.setRoom(3, ofWorker: 1)
        XCTAssertEqual(board.activity(ofWorker: 1)?.room, 3)
    }

    func testABoardOfAnotherShapeOrNoBoardIsRefused() throws {
        let (descriptor, entries) = self.apacheBoard(maximumProcesses: 2, requestSlots: 4)
        defer { close(descriptor) }
        XCTAssertThrowsError(
            try GroupScoreboard.adoptApacheBoard(descriptor: descriptor, workers: entries, requestSlots: 2))
        XCTAssertThrowsError(
            try GroupScoreboard.adoptApacheBoard(descriptor: descriptor, workers: entries + 4, requestSlots: 4))
        XCTAssertThrowsError(try GroupScoreboard.adoptApacheBoard(descriptor: 999, workers: entries, requestSlots: 4))
        let blank = sg_shared_memory_create("not-a-board", 1 << 20)
        defer { close(blank) }
        XCTAssertThrowsError(try GroupScoreboard.adoptApacheBoard(descriptor: blank, workers: entries, requestSlots: 4))
    }

    func testARunningRequestsPathIsPublishedWithoutItsQueryAndTruncated() throws {
        let (board, descriptor) = try GroupScoreboard.create(workers: 3, requestSlots: 2, processes: 1)
        defer { close(descriptor) }
        board.requestStarted(slot: 1, inFlight: 1, ofWorker: 2)
        XCTAssertNil(board.path(slot: 1, ofWorker: 2), "nothing published for this request yet")
        Array("/app/drip?secret=1".utf8).withUnsafeBytes { board.publishPath(slot: 1, ofWorker: 2, uri: $0) }
        XCTAssertEqual(board.path(slot: 1, ofWorker: 2), "/app/drip")
        XCTAssertNil(board.path(slot: 0, ofWorker: 2))

        // The next request in the slot: the previous path is not taken for its own.
        board.requestFinished(slot: 1, inFlight: 0, ofWorker: 2)
        XCTAssertNil(board.path(slot: 1, ofWorker: 2))
        usleep(1000)
        board.requestStarted(slot: 1, inFlight: 1, ofWorker: 2)
        XCTAssertNil(board.path(slot: 1, ofWorker: 2))
        let long = "/" + String(repeating: "x", count: 300)
        Array(long.utf8).withUnsafeBytes { board.publishPath(slot: 1, ofWorker: 2, uri: $0) }
        XCTAssertEqual(board.path(slot: 1, ofWorker: 2), String(long.prefix(Int(SG_SCOREBOARD_PATH_BYTES) - 1)))
        // Out of the board: ignored.
        Array("/x".utf8).withUnsafeBytes { board.publishPath(slot: 2, ofWorker: 2, uri: $0) }
        Array("/x".utf8).withUnsafeBytes { board.publishPath(slot: 0, ofWorker: 3, uri: $0) }
    }

    func testAWorkerPublishesItsQueueAndRoutedRequests() throws {
        let (board, descriptor) = try GroupScoreboard.create(workers: 2, requestSlots: 1, processes: 1)
        defer { close(descriptor) }
        board.setQueued(3, ofWorker: 1)
        board.countRoutedRequest(ofWorker: 1)
        board.countRoutedRequest(ofWorker: 1)
        XCTAssertEqual(board.activity(ofWorker: 1)?.queued, 3)
        XCTAssertEqual(board.activity(ofWorker: 1)?.routedRequests, 2)
        XCTAssertEqual(board.activity(ofWorker: 0), WorkerActivity())
    }

    func testTheGroupsCountsHoldAcrossWorkersThatAreGone() throws {
        let (board, descriptor) = try GroupScoreboard.create(workers: 2, requestSlots: 1, processes: 1)
        defer { close(descriptor) }
        for _ in 0..<5 {
            board.requestStarted(slot: 0, inFlight: 1, ofWorker: 0)
            board.requestFinished(slot: 0, inFlight: 0, ofWorker: 0)
        }
        board.publishWorker(0, pid: 10, slot: 0, startedAt: 1, startedUnixMicroseconds: 1, lastExit: "")
        XCTAssertEqual(board.occupiedEntries().map(\.entry), [0])
        board.retire(worker: 0)
        XCTAssertEqual(board.activity(ofWorker: 0), WorkerActivity(), "the entry is free for the next worker")
        XCTAssertEqual(board.occupiedEntries().count, 0)
        board.requestStarted(slot: 0, inFlight: 1, ofWorker: 0)
        board.requestFinished(slot: 0, inFlight: 0, ofWorker: 0)
        board.retire(worker: 0)
        board.count(RecycleCounter(.maximumRequests(limit: 5)))
        board.count(RecycleCounter.rollingRestart)
        board.count(RestartCounter(.signalled(signal: SIGSEGV, coreDumped: false)))
        board.count(RestartCounter(.exited(code: 1)))
        board.count(RestartCounter.blocked)
        let counters = board.counters()
        XCTAssertEqual(counters.requestsServedByGone, 6)
        XCTAssertEqual(counters.recycles[.maximumRequests], 1)
        XCTAssertEqual(counters.recycles[.rollingRestart], 1)
        XCTAssertEqual(counters.recycles[.scaledDown], 0)
        XCTAssertEqual(counters.restarts[.crashed], 1)
        XCTAssertEqual(counters.restarts[.exited], 1)
        XCTAssertEqual(counters.restarts[.blocked], 1)
    }

    func testTheCountersReasonsAreTheLayoutsOwn() {
        XCTAssertEqual(RecycleCounter.allCases.count, Int(SG_RECYCLE_REASONS.rawValue))
        XCTAssertEqual(RestartCounter.allCases.count, Int(SG_RESTART_REASONS.rawValue))
        XCTAssertEqual(RecycleCounter.maximumRequests.rawValue, Int32(SG_RECYCLE_MAXIMUM_REQUESTS.rawValue))
        XCTAssertEqual(RecycleCounter.requestTimeout.rawValue, Int32(SG_RECYCLE_REQUEST_TIMEOUT.rawValue))
        XCTAssertEqual(RecycleCounter.scaledDown.rawValue, Int32(SG_RECYCLE_SCALED_DOWN.rawValue))
        XCTAssertEqual(RestartCounter.crashed.rawValue, Int32(SG_RESTART_CRASHED.rawValue))
        XCTAssertEqual(RestartCounter.blocked.rawValue, Int32(SG_RESTART_BLOCKED.rawValue))
        XCTAssertEqual(GroupScoreboard.entryCount(maximumProcesses: 3), 13)
        XCTAssertEqual(GroupScoreboard.entryCount(maximumProcesses: 0), 5)
    }
}
