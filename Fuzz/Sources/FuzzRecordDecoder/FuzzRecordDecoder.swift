import NIOCore

@testable import SwiftGateway

/// One input: the input's first bytes choose how the rest is split into reads (whole,
/// byte by byte, or pieces of random lengths), the rest is the byte stream Apache would send a
/// worker. The records decoded from the split stream must be those decoded from the whole one,
/// and a stream refused whole must be refused split.
func fuzzRecordDecoder(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    var splits = InputSplits(UnsafeBufferPointer(start: start, count: count))
    let stream = splits.stream
    let whole = DecodedStream(reads: [ByteBuffer(bytes: stream)])
    var reads: [ByteBuffer] = []
    var offset = stream.startIndex
    while offset < stream.endIndex {
        let length = min(splits.nextLength(), stream.endIndex - offset)
        reads.append(ByteBuffer(bytes: stream[offset..<(offset + length)]))
        offset += length
    }
    let split = DecodedStream(reads: reads)
    precondition(whole == split, "the split stream decoded differently: \(whole) and \(split)")
    return 0
}

/// How the input is read: its first byte picks whole (0), byte by byte (1) or pieces of 1 to
/// 64 bytes drawn from a generator seeded by the next two bytes.
struct InputSplits {
    let stream: Slice<UnsafeBufferPointer<UInt8>>
    private let mode: UInt8
    private var state: UInt32

    init(_ input: UnsafeBufferPointer<UInt8>) {
        self.mode = input.first.map { $0 % 3 } ?? 0
        let seed = input.dropFirst().prefix(2).reduce(UInt32(0x9e37_79b9)) { $0 << 8 | UInt32($1) }
        self.state = seed | 1
        self.stream = input.dropFirst(min(3, input.count))
    }

    mutating func nextLength() -> Int {
        switch self.mode {
        case 0: return Int.max
        case 1: return 1
        default:
            self.state ^= self.state << 13
            self.state ^= self.state >> 17
            self.state ^= self.state << 5
            return Int(self.state % 64) + 1
        }
    }
}

/// What a decoder made of a stream's reads: its records in order, a `stdin` record's pieces
/// joined with the `stdin` pieces next to them (how a record was cut into pieces depends on the
/// reads), and whether the decoder refused the stream.
struct DecodedStream: Equatable, CustomStringConvertible {
    private(set) var records: [FastCGIRecord] = []
    private(set) var refused = false

    init(reads: [ByteBuffer]) {
        var decoder = FastCGIRecordDecoder()
        do {
            for read in reads {
                try decoder.decode(read) { record in
                    precondition(record.content.readableBytes <= FastCGIRecord.maximumContentLength)
                    self.append(record)
                }
            }
            try decoder.finish()
        } catch {
            self.refused = true
        }
    }

    private mutating func append(_ record: FastCGIRecord) {
        if record.type == .stdin, record.content.readableBytes > 0, var last = self.records.last,
            last.type == .stdin, last.requestID == record.requestID, last.content.readableBytes > 0
        {
            var more = record.content
            last.content.writeBuffer(&more)
            self.records[self.records.count - 1] = last
        } else {
            self.records.append(record)
        }
    }

    var description: String { "\(self.records.count) records (refused: \(self.refused))" }
}
