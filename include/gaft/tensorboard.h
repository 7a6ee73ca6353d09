// TensorBoard event files: every numeric field of a metrics record as a scalar, so that `tensorboard --logdir
// RUN/tensorboard` shows a run's curves live.
//
//   file: events.out.tfevents.<unix seconds>.<host>.<pid>.gaft, a sequence of TFRecords
//   record: uint64 length (little endian) | uint32 masked CRC-32C of the length | Event protobuf | uint32
//           masked CRC-32C of the protobuf   (mask: ((crc >> 15) | (crc << 17)) + 0xa282ead8)
//   first record: Event{wall_time, file_version: "brain.Event:2"}; then one Event{wall_time, step, summary}
//   per metrics record, with a Summary.Value{tag, simple_value} per number or boolean field.
//
// The messages are TensorFlow's Event, Summary and Summary.Value with TensorFlow's field numbers, in the
// protocol-buffer wire format, encoded here: libprotobuf is not usable in this process (Debian's sentencepiece
// carries protobuf 3.14's generated code, which aborts on a version check once Debian's libprotobuf 3.21 is
// loaded beside it). CRC-32C is Boost.CRC's. Each record is flushed when written. The reader is tested
// against a file TensorBoard's own writer made; tools/check_tensorboard.py reads a run with TensorBoard.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace gaft {

class TensorBoardWriter {
 public:
  // Creates `dir` and a new event file in it (a resumed run adds a file; TensorBoard reads them together).
  explicit TensorBoardWriter(const std::string& dir);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // One event at `step` with every number and boolean of `record` (booleans as 0/1) but "step" itself;
  // nested objects are flattened with '/' ("eval/harm"). Nothing is written when there is no such field.
  void write_scalars(int64_t step, const nlohmann::json& record);
  const std::string& path() const { return path_; }

 private:
  void write_record(const std::string& bytes);
  std::string path_;
  std::FILE* file_ = nullptr;
};

// The scalars of an event file, in file order: (step, tag -> value) per summary event. Both CRCs of every
// record are checked; DataError naming the file and the record's offset when one is wrong or truncated.
std::vector<std::pair<int64_t, std::map<std::string, float>>> read_tensorboard_scalars(const std::string& file);

}  // namespace gaft
