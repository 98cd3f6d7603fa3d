import RESP

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

#if !FUZZING
import Foundation
#endif

// libFuzzer target for RESPRequestParser.
//
// scripts/fuzz.sh builds it with `-Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING`: `main`
// then hands control to libFuzzer's driver, which calls `LLVMFuzzerTestOneInput` per input.
// (SwiftPM links every executable with `--defsym main=<Target>_main`, so libFuzzer's own `main`
// is never the entry point; `LLVMFuzzerRunDriver` is libFuzzer's documented way in.)
//
// Without FUZZING (the ordinary build) `main` runs the same checks over the files named on the
// command line, which replays a corpus or a crash input without the sanitizer:
// `swift run RESPFuzz Tests/Fuzz/Corpus/RESPFuzz/*`.

@_cdecl("LLVMFuzzerTestOneInput")
public func respFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
  let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
  RESPFuzzCheck.run(input)
  return 0
}

#if FUZZING
/// `int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*cb)(const uint8_t *, size_t))`, from
/// the libFuzzer runtime that `-sanitize=fuzzer` links in. Only pointers and integers cross, which
/// the Swift and C calling conventions pass alike.
@_silgen_name("LLVMFuzzerRunDriver")
func llvmFuzzerRunDriver(
  _ argc: UnsafeMutablePointer<CInt>,
  _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
  _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt
#endif

@main
struct RESPFuzzMain {
  static func main() throws {
    #if FUZZING
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(llvmFuzzerRunDriver(&argc, &argv, respFuzzTestOneInput))
    #else
    let paths = CommandLine.arguments.dropFirst()
    if paths.isEmpty {
      print("usage: RESPFuzz FILE... (replays fuzz inputs; scripts/fuzz.sh builds the fuzzer)")
      return
    }
    for path in paths {
      let data = try Data(contentsOf: URL(fileURLWithPath: path))
      RESPFuzzCheck.run([UInt8](data))
      print("ok \(path)")
    }
    #endif
  }
}

/// The checks made on one input; any failure traps, which is what the fuzzer reports.
enum RESPFuzzCheck {
  /// Small limits so that the fuzzer reaches every limit with short inputs; the buffered-bytes
  /// limit stays out of reach (it is enforced at `append`, so it depends on the slicing).
  static let smallLimits = RESPLimits(maxBulkBytes: 48, maxArrayLength: 12, maxInlineBytes: 48)

  static func run(_ input: [UInt8]) {
    for limits in [RESPLimits(), smallLimits] {
      let whole = parse(input, limits: limits, sliceSizes: nil)
      let sliced = parse(input, limits: limits, sliceSizes: SliceSizes(input))
      // Where the bytes were split must not matter, for the requests nor for the error.
      guard whole.requests == sliced.requests, whole.error == sliced.error else {
        fatalError(
          "slicing changed the result: whole \(whole.requests.count) requests, error \(String(describing: whole.error)); "
            + "sliced \(sliced.requests.count) requests, error \(String(describing: sliced.error))")
      }
      for request in whole.requests {
        checkRoundTrip(request)
      }
    }
  }

  /// Every request re-encoded as a multibulk array parses back to itself, whole and byte by byte.
  static func checkRoundTrip(_ request: [[UInt8]]) {
    guard !request.isEmpty else { fatalError("the parser returned an empty request") }
    let encoded = RESPValue.multibulk(request).encoded
    let again = parse(encoded, limits: RESPLimits(), sliceSizes: nil)
    guard again.error == nil, again.requests == [request] else {
      fatalError(
        "re-encoded request did not parse back: \(request.count) arguments, got "
          + "\(again.requests.count) requests, error \(String(describing: again.error))")
    }
  }

  struct Outcome {
    var requests: [[[UInt8]]] = []
    var error: RESPProtocolError?
  }

  /// Feeds `input` whole or in slices, draining `next()` after each append until nil or an error.
  static func parse(_ input: [UInt8], limits: RESPLimits, sliceSizes: SliceSizes?) -> Outcome {
    var parser = RESPRequestParser(limits: limits)
    var outcome = Outcome()
    var sizes = sliceSizes
    var offset = 0
    repeat {
      let size = sizes?.next() ?? input.count
      let end = min(input.count, offset + size)
      parser.append(input[offset..<end])
      offset = end
      do {
        while let request = try parser.next() {
          outcome.requests.append(request)
        }
      } catch {
        outcome.error = error
        // A failed parser stays failed.
        parser.append(input[0..<min(input.count, 8)])
        do {
          _ = try parser.next()
          fatalError("the parser recovered from \(error)")
        } catch let again {
          guard again == error else { fatalError("the parser's error changed: \(error), then \(again)") }
        }
        return outcome
      }
    } while offset < input.count
    return outcome
  }
}

/// Slice sizes derived from the input: an xorshift generator seeded with the input's FNV-1a
/// hash, mostly 1 to 16 bytes with an occasional larger slice.
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
