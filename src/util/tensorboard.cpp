// TensorBoard event files. See gaft/tensorboard.h.
#include "gaft/tensorboard.h"

#include <unistd.h>

#include <boost/crc.hpp>
#include <cstdint>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "gaft/error.h"
#include "gaft/read_file.h"

namespace gaft {

namespace fs = std::filesystem;

namespace {

uint32_t masked_crc32c(const void* data, size_t n) {
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;  // CRC-32C (Castagnoli)
  crc.process_bytes(data, n);
  const uint32_t c = crc.checksum();
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void put_le(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t get_le(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

// Protocol-buffer wire format (developers.google.com/protocol-buffers/docs/encoding) of TensorFlow's messages,
// with their field numbers (tensorflow/core/util/event.proto, tensorflow/core/framework/summary.proto):
//   Event { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
//   Summary { repeated Value value = 1; }   Value { string tag = 1; float simple_value = 2; }
enum WireType { kVarint = 0, kFixed64 = 1, kBytes = 2, kFixed32 = 5 };

void put_varint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void put_key(std::string* out, int field, WireType type) { put_varint(out, (static_cast<uint64_t>(field) << 3) | type); }

void put_bytes(std::string* out, int field, const std::string& bytes) {
  put_key(out, field, kBytes);
  put_varint(out, bytes.size());
  *out += bytes;
}

void put_double(std::string* out, int field, double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, 8);
  put_key(out, field, kFixed64);
  put_le(out, bits, 8);
}

void put_float(std::string* out, int field, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  put_key(out, field, kFixed32);
  put_le(out, bits, 4);
}

// Summary.Value messages of every number and boolean of `j` (nested objects flattened with '/').
void add_values(std::string* summary, const std::string& prefix, const nlohmann::json& j) {
  for (const auto& [key, v] : j.items()) {
    const std::string tag = prefix.empty() ? key : prefix + "/" + key;
    if (prefix.empty() && key == "step") continue;
    if (v.is_object()) {
      add_values(summary, tag, v);
    } else if (v.is_number() || v.is_boolean()) {
      std::string value;
      put_bytes(&value, 1, tag);
      put_float(&value, 2, v.is_boolean() ? (v.get<bool>() ? 1.0f : 0.0f) : v.get<float>());
      put_bytes(summary, 1, value);
    }
  }
}

// One field of a message: its number, wire type and payload (bytes for kBytes; the value for the others).
struct Field {
  int number = 0;
  WireType type = kVarint;
  uint64_t value = 0;
  std::string bytes;
};

// The fields of a serialized message; false when it is malformed.
bool parse_fields(const std::string& msg, std::vector<Field>* fields) {
  size_t at = 0;
  const auto varint = [&](uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (at >= msg.size()) return false;
      const auto b = static_cast<unsigned char>(msg[at++]);
      *v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  };
  while (at < msg.size()) {
    uint64_t key;
    if (!varint(&key)) return false;
    Field f;
    f.number = static_cast<int>(key >> 3);
    f.type = static_cast<WireType>(key & 7);
    const auto* p = reinterpret_cast<const unsigned char*>(msg.data());
    switch (f.type) {
      case kVarint:
        if (!varint(&f.value)) return false;
        break;
      case kFixed64:
        if (msg.size() - at < 8) return false;
        f.value = get_le(p + at, 8);
        at += 8;
        break;
      case kFixed32:
        if (msg.size() - at < 4) return false;
        f.value = get_le(p + at, 4);
        at += 4;
        break;
      case kBytes: {
        uint64_t n;
        if (!varint(&n) || msg.size() - at < n) return false;
        f.bytes = msg.substr(at, n);
        at += n;
        break;
      }
      default:
        return false;  // groups (3, 4) are not in these messages
    }
    fields->push_back(std::move(f));
  }
  return true;
}

}  // namespace

TensorBoardWriter::TensorBoardWriter(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  char host[256] = "localhost";
  ::gethostname(host, sizeof host - 1);
  path_ = (fs::path(dir) / ("events.out.tfevents." + std::to_string(static_cast<int64_t>(now_s())) + "." + host + "." +
                             std::to_string(::getpid()) + ".gaft"))
              .string();
  file_ = std::fopen(path_.c_str(), "ab");
  if (!file_) throw DataError("cannot write the TensorBoard event file " + path_ + ": " + std::strerror(errno));
  std::string first;
  put_double(&first, 1, now_s());
  put_bytes(&first, 3, "brain.Event:2");
  write_record(first);
}

TensorBoardWriter::~TensorBoardWriter() {
  if (file_) std::fclose(file_);
}

void TensorBoardWriter::write_scalars(int64_t step, const nlohmann::json& record) {
  std::string summary;
  add_values(&summary, "", record);
  if (summary.empty()) return;
  std::string event;
  put_double(&event, 1, now_s());
  put_key(&event, 2, kVarint);
  put_varint(&event, static_cast<uint64_t>(step));
  put_bytes(&event, 5, summary);
  write_record(event);
}

void TensorBoardWriter::write_record(const std::string& bytes) {
  std::string header;
  put_le(&header, bytes.size(), 8);
  std::string framed = header;
  put_le(&framed, masked_crc32c(header.data(), header.size()), 4);
  framed += bytes;
  put_le(&framed, masked_crc32c(bytes.data(), bytes.size()), 4);
  if (std::fwrite(framed.data(), 1, framed.size(), file_) != framed.size() || std::fflush(file_) != 0)
    throw DataError("cannot write the TensorBoard event file " + path_ + ": " + std::strerror(errno));
}

std::vector<std::pair<int64_t, std::map<std::string, float>>> read_tensorboard_scalars(const std::string& file) {
  const std::string data = read_text_file(file, "a TensorBoard event file (events.out.tfevents.*)", kMaxDataBytes);
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  std::vector<std::pair<int64_t, std::map<std::string, float>>> out;
  size_t at = 0;
  while (at < data.size()) {
    const auto bad = [&](const std::string& what) {
      throw DataError(file + ": record at byte " + std::to_string(at) + ": " + what);
    };
    if (data.size() - at < 12) bad("truncated header");
    const uint64_t n = get_le(p + at, 8);
    if (static_cast<uint32_t>(get_le(p + at + 8, 4)) != masked_crc32c(p + at, 8)) bad("wrong length CRC");
    const uint64_t left = data.size() - at - 12;  // after the header; n + 4 could wrap around
    if (left < 4 || n > left - 4) bad("truncated record");
    if (static_cast<uint32_t>(get_le(p + at + 12 + n, 4)) != masked_crc32c(p + at + 12, n)) bad("wrong data CRC");
    std::vector<Field> event;
    if (!parse_fields(data.substr(at + 12, n), &event)) bad("not an Event protobuf");
    int64_t step = 0;
    bool has_summary = false;
    std::map<std::string, float> values;
    for (const Field& f : event) {
      if (f.number == 2 && f.type == kVarint) step = static_cast<int64_t>(f.value);
      if (f.number != 5 || f.type != kBytes) continue;
      has_summary = true;
      std::vector<Field> summary;
      if (!parse_fields(f.bytes, &summary)) bad("not a Summary protobuf");
      for (const Field& v : summary) {
        if (v.number != 1 || v.type != kBytes) continue;
        std::vector<Field> value;
        if (!parse_fields(v.bytes, &value)) bad("not a Summary.Value protobuf");
        std::string tag;
        float x = 0.0f;  // proto3 leaves 0 out
        for (const Field& e : value) {
          if (e.number == 1 && e.type == kBytes) tag = e.bytes;
          if (e.number == 2 && e.type == kFixed32) {
            const auto bits = static_cast<uint32_t>(e.value);
            std::memcpy(&x, &bits, 4);
          }
        }
        values[tag] = x;
      }
    }
    if (has_summary) out.emplace_back(step, std::move(values));
    at += 12 + n + 4;
  }
  return out;
}

}  // namespace gaft
