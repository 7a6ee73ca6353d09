// safetensors reader and writer: round trips, shards, and every malformed file a clear DataError.
#include "gaft/safetensors.h"

#include <nlohmann/json.hpp>

#include "test_util.h"

using gaft_test::expect_data_error;
using gaft_test::TempDir;
using gaft_test::write_bytes;

namespace {

// A file with the given JSON header and `data_bytes` bytes of data.
std::string raw_file(const std::string& header, size_t data_bytes, uint64_t claimed_len = 0) {
  const uint64_t n = claimed_len ? claimed_len : header.size();
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s + header + std::string(data_bytes, '\x01');
}

}  // namespace

TEST(Safetensors, RoundTripEveryDtype) {
  TempDir dir("st_roundtrip");
  std::map<std::string, at::Tensor> in = {
      {"f32", at::randn({3, 4})},
      {"f16", at::randn({5}).to(at::kHalf)},
      {"bf16", at::randn({2, 2, 2}).to(at::kBFloat16)},
      {"i64", at::arange(7, at::kLong)},
      {"i32", at::arange(3, at::kInt)},
      {"scalar", at::scalar_tensor(2.5)},
      {"empty", at::zeros({0, 4})},
      {"strided", at::randn({4, 6}).t()},  // non-contiguous input
  };
  const std::string path = dir.file("a.safetensors");
  gaft::save_safetensors(path, in, {{"note", "test"}});
  gaft::SafetensorsFile f(path);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.metadata().at("note"), "test");
  EXPECT_EQ(f.names().size(), in.size());
  for (const auto& [name, t] : in) {
    const at::Tensor got = f.get(name);
    EXPECT_EQ(got.scalar_type(), t.scalar_type()) << name;
    EXPECT_EQ(got.sizes(), t.sizes()) << name;
    EXPECT_TRUE(at::equal(got, t)) << name;
    EXPECT_TRUE(at::equal(f.view(name), t)) << name;
  }
  // Header is padded so the data section starts 8-byte aligned.
  const std::string bytes = gaft_test::read_bytes(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  EXPECT_EQ(n % 8, 0u);
}

TEST(Safetensors, ShardedCheckpointWithIndex) {
  TempDir dir("st_shards");
  std::map<std::string, at::Tensor> in;
  for (int i = 0; i < 5; ++i) in["layer" + std::to_string(i)] = at::randn({16, 16});  // 1 KiB each
  const auto files = gaft::save_checkpoint(dir.str(), in, /*max_shard_bytes=*/2048);
  ASSERT_EQ(files.size(), 4u);  // 3 shards + index
  EXPECT_NE(files[0].find("model-00001-of-00003.safetensors"), std::string::npos);
  const gaft::Checkpoint ck = gaft::load_checkpoint(dir.str());
  ASSERT_EQ(ck.tensors.size(), in.size());
  for (const auto& [name, t] : in) EXPECT_TRUE(at::equal(ck.tensors.at(name), t)) << name;
  EXPECT_NE(ck.files.at("layer4").find("model-00003-of-00003"), std::string::npos);

  TempDir single("st_single");
  gaft::save_checkpoint(single.str(), in);
  EXPECT_TRUE(std::filesystem::exists(single.file("model.safetensors")));
  EXPECT_EQ(gaft::load_checkpoint(single.str()).tensors.size(), in.size());
}

// Views over the mapping (what load_llama reads from): same tensors as the owning copies, no copy made,
// and a tensor whose pages were released reads the same again (from the file).
TEST(Safetensors, MappedCheckpointViewsAndRelease) {
  TempDir dir("st_mapped");
  std::map<std::string, at::Tensor> in;
  for (int i = 0; i < 3; ++i) in["w" + std::to_string(i)] = at::randn({256, 64});  // 64 KiB: whole pages inside
  gaft::save_checkpoint(dir.str(), in, /*max_shard_bytes=*/70000);                   // 3 shards
  const gaft::MappedCheckpoint mapped(dir.str());
  const gaft::Checkpoint& ck = mapped.checkpoint();
  ASSERT_EQ(ck.tensors.size(), in.size());
  for (const auto& [name, t] : in) {
    const at::Tensor& v = ck.tensors.at(name);
    EXPECT_TRUE(at::equal(v, t)) << name;
    EXPECT_NE(ck.files.at(name).find("model-0000"), std::string::npos) << name;
    const void* before = v.data_ptr();
    mapped.release(name);
    EXPECT_EQ(v.data_ptr(), before);  // still the same view over the same mapping
    EXPECT_TRUE(at::equal(v, t)) << name << " after release";
  }
  EXPECT_NO_THROW(mapped.release("not-a-tensor"));  // nothing to drop
  expect_data_error([&] { gaft::MappedCheckpoint m(dir.file("nothing")); }, {"nothing"});
}

TEST(Safetensors, IndexNamingAMissingTensor) {
  TempDir dir("st_index_missing");
  gaft::save_safetensors(dir.file("shard.safetensors"), {{"a", at::ones({2})}});
  write_bytes(dir.file("model.safetensors.index.json"),
              R"({"weight_map": {"a": "shard.safetensors", "b": "shard.safetensors"}})");
  expect_data_error([&] { gaft::load_checkpoint(dir.str()); }, {"shard.safetensors", "'b'", "missing"});
}

TEST(Safetensors, RefusesPickledCheckpoints) {
  TempDir dir("st_pickle");
  write_bytes(dir.file("pytorch_model.bin"), "PK\x03\x04 not really");
  try {
    gaft::load_checkpoint(dir.str());
    FAIL() << "expected a DataError";
  } catch (const gaft::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("pytorch_model.bin"), std::string::npos) << e.what();
    EXPECT_NE(e.hint().find("safetensors"), std::string::npos) << e.hint();
  }
  expect_data_error([&] { gaft::load_checkpoint(dir.file("pytorch_model.bin")); }, {"pytorch_model.bin", "pickle"});
  TempDir empty("st_empty_dir");
  expect_data_error([&] { gaft::load_checkpoint(empty.str()); }, {"no model.safetensors"});
}

TEST(Safetensors, TruncatedFile) {
  TempDir dir("st_truncated");
  write_bytes(dir.file("t.safetensors"), "abc");
  expect_data_error([&] { gaft::SafetensorsFile f(dir.file("t.safetensors")); }, {"t.safetensors", "truncated"});
  // A valid file cut short inside its data section.
  gaft::save_safetensors(dir.file("cut.safetensors"), {{"w", at::randn({64})}});
  std::string bytes = gaft_test::read_bytes(dir.file("cut.safetensors"));
  write_bytes(dir.file("cut.safetensors"), bytes.substr(0, bytes.size() - 10));
  expect_data_error([&] { gaft::SafetensorsFile f(dir.file("cut.safetensors")); }, {"cut.safetensors", "'w'", "out of range"});
}

TEST(Safetensors, HeaderLengthBeyondFile) {
  TempDir dir("st_header_len");
  write_bytes(dir.file("h.safetensors"), raw_file("{}", 0, /*claimed_len=*/1000));
  expect_data_error([&] { gaft::SafetensorsFile f(dir.file("h.safetensors")); }, {"h.safetensors", "header length 1000"});
}

TEST(Safetensors, OffsetsOutOfRangeOrInconsistent) {
  TempDir dir("st_offsets");
  write_bytes(dir.file("o.safetensors"), raw_file(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8));
  expect_data_error([&] { gaft::SafetensorsFile f(dir.file("o.safetensors")); }, {"o.safetensors", "'w'", "out of range"});
  write_bytes(dir.file("s.safetensors"), raw_file(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", 16));
  expect_data_error([&] { gaft::SafetensorsFile f(dir.file("s.safetensors")); }, {"s.safetensors", "'w'", "expected 12"});
  write_bytes(dir.file("r.safetensors"), raw_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 16));
  expect_data_error([&] { gaft::SafetensorsFile f(dir.file("r.safetensors")); }, {"r.safetensors", "'w'"});
}

TEST(Safetensors, OverlappingTensors) {
  TempDir dir("st_overlap");
  write_bytes(dir.file("v.safetensors"),
              raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                       R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                       16));
  expect_data_error([&] { gaft::SafetensorsFile f(dir.file("v.safetensors")); }, {"v.safetensors", "'a'", "'b'", "overlap"});
}

TEST(Safetensors, UnknownDtypeAndBadJson) {
  TempDir dir("st_dtype");
  write_bytes(dir.file("d.safetensors"), raw_file(R"({"w":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})", 2));
  expect_data_error([&] { gaft::SafetensorsFile f(dir.file("d.safetensors")); }, {"d.safetensors", "'w'", "F8_E4M3"});
  write_bytes(dir.file("j.safetensors"), raw_file("{not json", 0));
  expect_data_error([&] { gaft::SafetensorsFile f(dir.file("j.safetensors")); }, {"j.safetensors", "JSON"});
  expect_data_error([&] { gaft::SafetensorsFile f(dir.file("absent.safetensors")); }, {"absent.safetensors"});
}
