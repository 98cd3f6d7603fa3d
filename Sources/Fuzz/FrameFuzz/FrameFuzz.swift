import NIOCore
import Wire

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

#if !FUZZING
import Foundation
#endif

// libFuzzer target for the RPC frame decoder (`FrameDecoder`): the bytes a connection receives,
// fed whole and in input-derived slices, must decode to the same envelopes and the same error,
// and every decoded envelope must re-encode and decode to itself. Built like RESPFuzz (see
// Sources/Fuzz/RESPFuzz/RESPFuzz.swift): `scripts/fuzz.sh FrameFuzz SECONDS`; the ordinary
// build replays inputs (`swift run FrameFuzz FILE...`).

@_cdecl("LLVMFuzzerTestOneInput")
public func frameFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
  let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
  FrameFuzzCheck.run(input)
  return 0
}

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func llvmFuzzerRunDriver(
  _ argc: UnsafeMutablePointer<CInt>,
  _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
  _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt
#endif

@main
struct FrameFuzzMain {
  static func main() throws {
    #if FUZZING
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(llvmFuzzerRunDriver(&argc, &argv, frameFuzzTestOneInput))
    #else
    let paths = CommandLine.arguments.dropFirst()
    if paths.isEmpty {
      print("usage: FrameFuzz FILE... (replays fuzz inputs; scripts/fuzz.sh builds the fuzzer)")
      return
    }
    for path in paths {
      let data = try Data(contentsOf: URL(fileURLWithPath: path))
      FrameFuzzCheck.run([UInt8](data))
      print("ok \(path)")
    }
    #endif
  }
}

/// The checks made on one input; any failure traps, which is what the fuzzer reports.
enum FrameFuzzCheck {
  static func run(_ input: [UInt8]) {
    for limit in [64, Frame.defaultMaximumSize] {
      let whole = decode(input, limit: limit, slices: nil)
      let sliced = decode(input, limit: limit, slices: SliceSizes(input))
      guard whole.envelopes == sliced.envelopes, whole.error == sliced.error else {
        fatalError(
          "slicing changed the result: \(whole.envelopes.count) envelopes, error \(String(describing: whole.error)); "
            + "sliced \(sliced.envelopes.count), error \(String(describing: sliced.error))")
      }
      for envelope in whole.envelopes { checkRoundTrip(envelope, limit: limit) }
    }
  }

  static func checkRoundTrip(_ envelope: Shardkv_Envelope, limit: Int) {
    var buffer = ByteBufferAllocator().buffer(capacity: 0)
    do {
      try FrameEncoder.encode(envelope, into: &buffer, maximumFrameSize: limit)
    } catch {
      // A decoded envelope can re-encode larger (unknown fields kept, varints normalized).
      return
    }
    let again = decode(Array(buffer.readableBytesView), limit: limit, slices: nil)
    guard again.error == nil, again.envelopes == [envelope] else {
      fatalError("a decoded envelope did not survive re-encoding: \(String(describing: again.error))")
    }
  }

  struct Outcome {
    var envelopes: [Shardkv_Envelope] = []
    var error: String?
  }

  static func decode(_ input: [UInt8], limit: Int, slices: SliceSizes?) -> Outcome {
    let processor = NIOSingleStepByteToMessageProcessor(FrameDecoder(maximumFrameSize: limit))
    var outcome = Outcome()
    var sizes = slices
    var offset = 0
    repeat {
      let end = min(input.count, offset + (sizes?.next() ?? input.count))
      var buffer = ByteBufferAllocator().buffer(capacity: end - offset)
      buffer.writeBytes(input[offset..<end])
      offset = end
      do {
        try processor.process(buffer: buffer) { outcome.envelopes.append($0) }
      } catch let error as RPCError {
        // The first error ends the stream, as the connection is then closed.
        outcome.error = "\(error)"
        return outcome
      } catch {
        fatalError("the decoder threw a non-RPC error: \(error)")
      }
    } while offset < input.count
    return outcome
  }
}

/// Slice sizes derived from the input (as in RESPFuzz): mostly 1 to 16 bytes.
struct SliceSizes {
  private var state: UInt64

  init(_ input: [UInt8]) {
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    for byte in input {
      hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
    }
    state = hash == 0 ? 1 : hash
  }

  mutating func next() -> Int {
    state ^= state << 13
    state ^= state >> 7
    state ^= state << 17
    let draw = Int(truncatingIfNeeded: state & 0xFF)
    return draw < 224 ? draw % 16 + 1 : draw
  }
}
