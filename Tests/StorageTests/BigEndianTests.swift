import XCTest

@testable import Storage

final class BigEndianTests: XCTestCase {
  func testEncodesMostSignificantByteFirst() {
    XCTAssertEqual(BigEndian.bytes(UInt64(0x0102_0304_0506_0708)), [1, 2, 3, 4, 5, 6, 7, 8])
    XCTAssertEqual(BigEndian.bytes(UInt32(0x0A0B_0C0D)), [0x0A, 0x0B, 0x0C, 0x0D])
    var buffer: [UInt8] = [0xFF]
    BigEndian.append(UInt32(7), to: &buffer)
    BigEndian.append(UInt64(1), to: &buffer)
    XCTAssertEqual(buffer, [0xFF, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 1])
  }

  func testRoundTripsAtOffsets() {
    for value: UInt64 in [0, 1, 255, 256, .max, .max - 1, 0x8000_0000_0000_0000] {
      XCTAssertEqual(BigEndian.uint64(from: BigEndian.bytes(value)), value)
      XCTAssertEqual(BigEndian.uint64(from: [9, 9] + BigEndian.bytes(value), at: 2), value)
    }
    for value: UInt32 in [0, 1, .max] {
      XCTAssertEqual(BigEndian.uint32(from: BigEndian.bytes(value)), value)
      XCTAssertEqual(BigEndian.uint32(from: (BigEndian.bytes(value) + [1])[...]), value)
    }
  }

  func testEncodingSortsLikeTheNumbers() {
    let values: [UInt64] = [0, 1, 255, 256, 65_535, 65_536, 1 << 40, .max]
    let encoded = values.map { BigEndian.bytes($0) }
    XCTAssertEqual(encoded, encoded.sorted { $0.lexicographicallyPrecedes($1) })
  }

  func testDecodingShortInputReturnsNil() {
    XCTAssertNil(BigEndian.uint64(from: [1, 2, 3, 4, 5, 6, 7]))
    XCTAssertNil(BigEndian.uint64(from: [UInt8](repeating: 0, count: 8), at: 1))
    XCTAssertNil(BigEndian.uint64(from: [UInt8](repeating: 0, count: 8), at: -1))
    XCTAssertNil(BigEndian.uint32(from: []))
    XCTAssertNil(BigEndian.uint32(from: [1, 2, 3, 4], at: 4))
  }
}
