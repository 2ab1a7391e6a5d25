import NIOCore
import XCTest

@testable import SwiftGateway

/// The inbound protocol rules alone, record by record, without a channel.
final class FastCGIServerStateMachineTests: XCTestCase {
    private func machine() -> FastCGIServerStateMachine {
        FastCGIServerStateMachine(maximumParamsLength: 1024, maximumConnections: 7)
    }

    private func record(_ type: FastCGIRecordType, id: UInt16 = 1, _ bytes: [UInt8] = []) -> FastCGIRecord {
        FastCGIRecord(type: type, requestID: id, content: ByteBuffer(bytes: bytes))
    }

    private func begin(id: UInt16 = 1, role: UInt16 = 1, keepConnection: Bool) -> FastCGIRecord {
        self.record(
            .beginRequest, id: id, [UInt8(role >> 8), UInt8(role & 0xFF), keepConnection ? 1 : 0, 0, 0, 0, 0, 0])
    }

    private func params(_ pairs: [(name: String, value: String)], id: UInt16 = 1) -> FastCGIRecord {
        var buffer = ByteBuffer()
        FastCGINameValuePairs.encode(pairs, into: &buffer)
        return FastCGIRecord(type: .params, requestID: id, content: buffer)
    }

    private func failure(_ action: FastCGIServerStateMachine.Action) -> FastCGIError? {
        switch action {
        case .fail(let error), .replyAndFail(_, let error): error
        case .none, .emit, .reply: nil
        }
    }

    private func emitted(_ action: FastCGIServerStateMachine.Action) -> FastCGIRequestPart? {
        if case .emit(let part) = action { return part }
        return nil
    }

    /// BEGIN_REQUEST, the params stream and its end: the head, with the request's variables.
    private func startRequest(
        _ sm: inout FastCGIServerStateMachine,
        id: UInt16 = 1,
        keepConnection: Bool
    ) throws {
        XCTAssertNil(self.emitted(sm.receive(self.begin(id: id, keepConnection: keepConnection))))
        XCTAssertEqual(sm.responseRequestID, id)
        XCTAssertNil(self.emitted(sm.receive(self.params([(name: "REQUEST_METHOD", value: "GET")], id: id))))
        let head = try XCTUnwrap(self.emitted(sm.receive(self.record(.params, id: id))))
        guard case .head(let requestHead) = head else { return XCTFail("expected the head, got \(head)") }
        XCTAssertEqual(requestHead.requestID, id)
        XCTAssertEqual(requestHead.keepConnection, keepConnection)
        XCTAssertEqual(requestHead.parameter("REQUEST_METHOD"), "GET")
    }

    func testAKeptConnectionTakesRequestAfterRequest() throws {
        var sm = self.machine()
        for id: UInt16 in [1, 2] {
            try self.startRequest(&sm, id: id, keepConnection: true)
            XCTAssertEqual(
                self.emitted(sm.receive(self.record(.stdin, id: id, [1, 2, 3]))), .body(ByteBuffer(bytes: [1, 2, 3])))
            XCTAssertEqual(self.emitted(sm.receive(self.record(.stdin, id: id))), .end)
            sm.responseEnded()
            XCTAssertNil(sm.responseRequestID)
            guard case .awaitingBegin = sm.state else { return XCTFail("after request \(id): \(sm.state)") }
        }
    }

    func testWithoutKeepConnectionNothingMayFollowTheRequest() throws {
        var sm = self.machine()
        try self.startRequest(&sm, keepConnection: false)
        XCTAssertEqual(self.emitted(sm.receive(self.record(.stdin))), .end)
        sm.responseEnded()
        guard case .finished = sm.state else { return XCTFail("\(sm.state)") }
        XCTAssertEqual(self.failure(sm.receive(self.begin(id: 2, keepConnection: true))), .unexpectedRecord)
    }

    func testAResponseBeforeTheBodyEndsDrainsTheRestOfTheInput() throws {
        var sm = self.machine()
        try self.startRequest(&sm, keepConnection: true)
        sm.responseEnded()
        guard case .drainingInput = sm.state else { return XCTFail("\(sm.state)") }
        // The rest of the body is dropped, its end still reported, then the next request may begin.
        XCTAssertNil(self.emitted(sm.receive(self.record(.stdin, [9, 9]))))
        XCTAssertEqual(self.emitted(sm.receive(self.record(.stdin))), .end)
        try self.startRequest(&sm, id: 2, keepConnection: true)
    }

    func testASecondRequestWhileOneIsActiveIsRefusedAsMultiplexing() throws {
        var sm = self.machine()
        try self.startRequest(&sm, keepConnection: true)
        let action = sm.receive(self.begin(id: 2, keepConnection: true))
        guard case .replyAndFail(.endRequest(requestID: 2, status: .cantMultiplexConnection), let error) = action else {
            return XCTFail("\(action)")
        }
        XCTAssertEqual(error, .wrongRequestID)
    }

    func testOnlyTheResponderRoleIsServed() {
        var sm = self.machine()
        let action = sm.receive(self.begin(role: 2, keepConnection: true))
        guard case .replyAndFail(.endRequest(requestID: 1, status: .unknownRole), let error) = action else {
            return XCTFail("\(action)")
        }
        XCTAssertEqual(error, .unknownRole)
    }

    func testMalformedOrOutOfOrderRecordsFailTheConnection() {
        var sm = self.machine()
        XCTAssertEqual(self.failure(sm.receive(self.record(.stdin))), .unexpectedRecord)

        sm = self.machine()
        XCTAssertEqual(self.failure(sm.receive(self.record(.beginRequest, [0, 1, 0]))), .malformedBeginRequest)

        sm = self.machine()
        _ = sm.receive(self.begin(keepConnection: true))
        XCTAssertEqual(self.failure(sm.receive(self.record(.stdin))), .unexpectedRecord)

        sm = self.machine()
        _ = sm.receive(self.begin(keepConnection: true))
        XCTAssertEqual(self.failure(sm.receive(self.record(.abortRequest))), .requestAborted)
    }

    func testAParamsStreamOverTheLimitFails() {
        var sm = self.machine()
        _ = sm.receive(self.begin(keepConnection: true))
        let long = String(repeating: "x", count: 600)
        XCTAssertNil(self.failure(sm.receive(self.params([(name: "A", value: long)]))))
        XCTAssertEqual(self.failure(sm.receive(self.params([(name: "B", value: long)]))), .paramsTooLarge)
    }

    func testAfterAFailureInputIsIgnored() {
        var sm = self.machine()
        _ = sm.receive(self.record(.stdin))
        sm.fail()
        XCTAssertTrue(sm.isFailed)
        guard case .none = sm.receive(self.begin(keepConnection: true)) else { return XCTFail("input after a failure") }
    }

    func testManagementRecordsAreAnsweredWhateverTheState() {
        var sm = self.machine()
        var query = ByteBuffer()
        FastCGINameValuePairs.encode([(name: "FCGI_MAX_CONNS", value: ""), (name: "UNKNOWN", value: "")], into: &query)
        let action = sm.receive(FastCGIRecord(type: .getValues, requestID: 0, content: query))
        guard case .reply(.getValuesResult(let answer)) = action else { return XCTFail("\(action)") }
        XCTAssertEqual(answer.map(\.name), ["FCGI_MAX_CONNS"])
        XCTAssertEqual(answer.first?.value, "7")

        guard case .reply(.unknownType(.stdout)) = sm.receive(self.record(.stdout, id: 0)) else {
            return XCTFail("an unknown management record is answered with UNKNOWN_TYPE")
        }
    }
}
