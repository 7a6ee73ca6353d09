// Hostile inputs (issue 21): files crafted to crash, hang or exhaust gaft, one corruption at a time, each
// through the CLI. Every one must end in exit 2 or 3 with a message naming the file, no signal, no hang.
// The cases are made here from ../shared/models/stories260K (a copy per case).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/run_gaft.h"
#include "core/test_util.h"
#include "gaft/safetensors.h"

using gaft_test::run_gaft;
using gaft_test::TempDir;
namespace fs = std::filesystem;

namespace {

const std::string kModel = gaft_test::kStories + "/hf";

// JSON text nested `depth` levels deep: [[[...1...]]].
std::string deep_json(int depth) { return std::string(static_cast<size_t>(depth), '[') + "1" + std::string(static_cast<size_t>(depth), ']'); }

class Hostile : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kModel)) GTEST_SKIP() << "no shared folder";
  }
  // A copy of the model folder to corrupt.
  std::string model_copy(const std::string& name) {
    const std::string d = dir.file(name);
    fs::create_directories(d);
    for (const auto& e : fs::directory_iterator(kModel)) fs::copy(e.path(), fs::path(d) / e.path().filename());
    return d;
  }
  static nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(gaft_test::read_bytes(path)); }
  // Runs gaft with a time limit; expects `code` (2 or 3) and every part in the output.
  static void expect_clean_failure(const std::string& args, int code, std::initializer_list<std::string> parts) {
    SCOPED_TRACE(args);
    gaft_test::expect_exit(run_gaft(args, true, 60), code, parts);
  }
  static std::string generate(const std::string& model) { return "generate --model " + model + " --prompt Once --max-new-tokens 2"; }
  // An SFT run config (2 steps, a checkpoint each step) on two examples, writing to dir/<name>; its path.
  std::string sft_config(const std::string& name, int64_t batch_size) {
    gaft_test::write_bytes(dir.file("train.jsonl"), "{\"prompt\": \"Once\", \"response\": \"upon a time.\"}\n"
                                                     "{\"prompt\": \"The dog\", \"response\": \"ran.\"}\n");
    const std::string path = dir.file(name + ".yaml");
    gaft_test::write_bytes(path, "run: {output_dir: " + dir.file(name) + ", seed: 1, threads: 1}\n"
                           "model: {path: " + kModel + "}\n"
                           "data: {train: " + dir.file("train.jsonl") + ", max_prompt_tokens: 32, max_response_tokens: 32}\n"
                           "objective: {kind: sft}\ntrain: {batch_size: " + std::to_string(batch_size) + ", max_steps: 2}\n"
                           "logging: {progress: off}\ncheckpoint: {every_steps: 1, keep_last: 1}\n");
    return path;
  }
  TempDir dir{"hostile"};
};

}  // namespace

TEST_F(Hostile, DeeplyNestedJsonIsRefusedNotACrash) {
  // config.json: a value 100000 levels deep.
  std::string m = model_copy("deep_config");
  std::string cfg = gaft_test::read_bytes(m + "/config.json");
  cfg.insert(cfg.find('{') + 1, "\"deep\": " + deep_json(100000) + ",");
  gaft_test::write_bytes(m + "/config.json", cfg);
  expect_clean_failure(generate(m), 3, {m + "/config.json", "nested deeper than 256"});
  // tokenizer.json-style file given to tokenize.
  gaft_test::write_bytes(dir.file("tokenizer.json"), "{\"model\": " + deep_json(100000) + "}");
  expect_clean_failure("tokenize --tokenizer " + dir.file("tokenizer.json") + " --text hi", 3, {"tokenizer.json", "nested deeper"});
  // A safetensors header whose dtype is nested.
  m = model_copy("deep_header");
  const std::string header = "{\"x\": {\"dtype\": " + deep_json(100000) + ", \"shape\": [1], \"data_offsets\": [0, 4]}}";
  std::string bytes(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  gaft_test::write_bytes(m + "/model.safetensors", bytes + header + std::string(4, '\0'));
  expect_clean_failure(generate(m), 3, {"model.safetensors", "nested deeper"});
}

TEST_F(Hostile, ModelSizesAreCheckedBeforeAnythingIsAllocated) {
  const std::vector<std::pair<std::string, nlohmann::json>> cases = {
      {"vocab_size", 1000000000000LL}, {"vocab_size", 100000000}, {"num_hidden_layers", 10000000000LL},
      {"hidden_size", 4611686018427387904LL}, {"max_position_embeddings", 1000000000000LL}};
  int i = 0;
  for (const auto& [key, value] : cases) {
    const std::string m = model_copy("size" + std::to_string(i++));
    nlohmann::json c = read_json(m + "/config.json");
    c[key] = value;
    gaft_test::write_bytes(m + "/config.json", c.dump());
    expect_clean_failure(generate(m), 3, {m + "/config.json", key, "out of range"});
  }
  // In range one by one, too large together: the memory check names the sizes.
  const std::string m = model_copy("too_big");
  nlohmann::json c = read_json(m + "/config.json");
  c["vocab_size"] = 1 << 23;
  c["hidden_size"] = 1 << 16;
  c["num_attention_heads"] = 512;
  c["num_key_value_heads"] = 512;
  c["head_dim"] = 128;
  gaft_test::write_bytes(m + "/config.json", c.dump());
  expect_clean_failure(generate(m), 3, {m + "/config.json", "GiB in float32, more than the", "memory of this machine"});
}

TEST_F(Hostile, SpecialFilesAreRefusedWithoutBlocking) {
  // A FIFO (would block forever) and /dev/zero (never ends) in place of config.json, and a FIFO for the weights.
  std::string m = model_copy("fifo_config");
  fs::remove(m + "/config.json");
  ASSERT_EQ(::mkfifo((m + "/config.json").c_str(), 0600), 0);
  expect_clean_failure(generate(m), 3, {m + "/config.json", "is a FIFO, expected a regular file"});
  m = model_copy("zero_config");
  fs::remove(m + "/config.json");
  fs::create_symlink("/dev/zero", m + "/config.json");
  expect_clean_failure(generate(m), 3, {m + "/config.json", "is a character device"});
  m = model_copy("fifo_weights");
  fs::remove(m + "/model.safetensors");
  ASSERT_EQ(::mkfifo((m + "/model.safetensors").c_str(), 0600), 0);
  expect_clean_failure(generate(m), 3, {m + "/model.safetensors", "not a regular file"});
  // A training config that is a FIFO: a usage error.
  ASSERT_EQ(::mkfifo(dir.file("run.yaml").c_str(), 0600), 0);
  expect_clean_failure("train --config " + dir.file("run.yaml"), 2, {dir.file("run.yaml"), "is a FIFO"});
}

TEST_F(Hostile, ShardPathsStayInsideTheModelFolder) {
  const std::string m = model_copy("escape");
  fs::rename(m + "/model.safetensors", m + "/model-00001-of-00001.safetensors");
  const gaft::Checkpoint ck = gaft::load_checkpoint(m + "/model-00001-of-00001.safetensors");
  for (const std::string& bad : {std::string("../model-00001-of-00001.safetensors"), std::string("/etc/passwd"),
                                 std::string("sub/x.safetensors")}) {
    nlohmann::json wm = nlohmann::json::object();
    for (const auto& [name, t] : ck.tensors) wm[name] = "model-00001-of-00001.safetensors";
    wm[ck.tensors.begin()->first] = bad;
    gaft_test::write_bytes(m + "/model.safetensors.index.json", nlohmann::json{{"weight_map", wm}}.dump());
    expect_clean_failure(generate(m), 3, {"model.safetensors.index.json", "is not a file name in the model folder"});
  }
}

TEST_F(Hostile, NonFiniteWeightsAreRefusedNamingTheTensor) {
  const std::string m = model_copy("nan");
  gaft::Checkpoint ck = gaft::load_checkpoint(m + "/model.safetensors");
  std::map<std::string, at::Tensor> tensors(ck.tensors.begin(), ck.tensors.end());
  at::Tensor w = tensors.at("model.layers.2.mlp.up_proj.weight").clone();
  w.view(-1)[17] = std::numeric_limits<float>::quiet_NaN();
  tensors["model.layers.2.mlp.up_proj.weight"] = w;
  gaft::save_safetensors(m + "/model.safetensors", tensors);
  expect_clean_failure(generate(m), 3, {"model.safetensors", "model.layers.2.mlp.up_proj.weight", "non-finite"});
}

TEST_F(Hostile, TokenIdsFarOutOfRangeAreRefused) {
  // A real byte-level BPE tokenizer.json (Qwen2's, cut down) with one vocabulary id at 2^31 - 1.
  nlohmann::json tok = read_json(std::string(GAFT_TEST_DATA) + "/tokenizer/qwen2/tokenizer.json");
  tok["model"]["vocab"]["b"] = 2147483647;
  fs::create_directories(dir.file("big_id"));
  gaft_test::write_bytes(dir.file("big_id/tokenizer.json"), tok.dump());
  expect_clean_failure("tokenize --tokenizer " + dir.file("big_id/tokenizer.json") + " --text ab", 3,
                       {"tokenizer.json", "2147483647", "out of range"});
}

// Adapters from a downloaded folder: a target_modules pattern that crashed std::regex (30000 nested groups) or
// backtracked without end, and NaN adapter weights that `export --merge` wrote into a model.
TEST_F(Hostile, AdapterPatternsAndWeightsAreBounded) {
  const std::string src = std::string(GAFT_TEST_DATA) + "/lora/peft_regex";
  const auto adapter = [&](const std::string& name, const std::string& pattern) {
    const std::string d = dir.file(name);
    fs::create_directories(d);
    fs::copy_file(src + "/adapter_model.safetensors", d + "/adapter_model.safetensors");
    nlohmann::json c = read_json(src + "/adapter_config.json");
    c["base_model_name_or_path"] = kModel;
    c["target_modules"] = pattern;
    gaft_test::write_bytes(d + "/adapter_config.json", c.dump());
    return d;
  };
  const auto merge = [&](const std::string& d) { return "export --merge " + d + " --out " + d + "_merged --base " + kModel; };
  std::string d = adapter("nested", std::string(1000, '(') + "q" + std::string(1000, ')'));
  expect_clean_failure(merge(d), 3, {d + "/adapter_config.json", "target_modules", "not a valid regular expression"});
  d = adapter("catastrophic", "(*NO_START_OPT)(\\w+\\.?)*X");  // start-of-match optimisations off: backtracks
  expect_clean_failure(merge(d), 3, {"target_modules: could not be matched"});
  d = adapter("long", std::string(5000, 'a'));
  expect_clean_failure(merge(d), 3, {"more than 4096"});
  // NaN in an adapter: refused, naming the tensor; nothing written.
  d = adapter("nan", ".*layers\\.[0-2]\\.self_attn\\.(k|o)_proj");
  gaft::Checkpoint ck = gaft::load_checkpoint(d + "/adapter_model.safetensors");
  std::map<std::string, at::Tensor> tensors(ck.tensors.begin(), ck.tensors.end());
  const std::string victim = tensors.begin()->first;
  at::Tensor t = tensors.at(victim).clone();
  t.view(-1)[0] = std::numeric_limits<float>::infinity();
  tensors[victim] = t;
  gaft::save_safetensors(d + "/adapter_model.safetensors", tensors);
  expect_clean_failure(merge(d), 3, {"adapter_model.safetensors", victim, "non-finite"});
  EXPECT_FALSE(fs::exists(d + "_merged"));
  // The same folder with finite weights merges (the checks do not refuse good adapters).
  fs::copy_file(src + "/adapter_model.safetensors", d + "/adapter_model.safetensors", fs::copy_options::overwrite_existing);
  EXPECT_EQ(run_gaft(merge(d), true, 120).code, 0);
}

// A checkpoint folder is shared like a model folder: resuming from one must never run code from it. The
// archive tests/data/malicious/hang_on_load.pt (tools/make_malicious_archive.py) runs a loop that never ends
// when LibTorch loads it; before, a resume read optimizer.pt through such an archive reader and hung.
TEST_F(Hostile, CheckpointArchivesAreNeverOpened) {
  const std::string evil = std::string(GAFT_TEST_DATA) + "/malicious/hang_on_load.pt";
  const std::string out = dir.file("run");
  ASSERT_EQ(run_gaft("train --config " + sft_config("run", 2) + " train.max_steps=1", true, 120).code, 0);
  const std::string ckpt = out + "/checkpoints/step-00000001";
  ASSERT_TRUE(fs::exists(ckpt + "/optimizer.safetensors"));
  ASSERT_TRUE(fs::exists(ckpt + "/rng.json"));
  const std::string resume = "train --config " + dir.file("run.yaml") + " checkpoint.resume=" + ckpt;
  // Each state file replaced by the archive in turn: a clear refusal naming it, quickly.
  for (const char* file : {"optimizer.safetensors", "optimizer.json", "rng.json"}) {
    const std::string path = ckpt + "/" + file;
    fs::rename(path, path + ".good");
    fs::copy_file(evil, path);
    expect_clean_failure(resume, 3, {path});
    fs::remove(path);
    fs::rename(path + ".good", path);
  }
  // A checkpoint of the old layout (optimizer.pt, rng.pt): refused without opening the archives.
  fs::rename(ckpt + "/optimizer.safetensors", ckpt + "/optimizer.safetensors.good");
  fs::copy_file(evil, ckpt + "/optimizer.pt");
  fs::copy_file(evil, ckpt + "/rng.pt");
  expect_clean_failure(resume, 3, {ckpt, "LibTorch archives", "can carry code"});
  fs::remove(ckpt + "/optimizer.pt");
  fs::remove(ckpt + "/rng.pt");
  fs::rename(ckpt + "/optimizer.safetensors.good", ckpt + "/optimizer.safetensors");
  // The intact checkpoint resumes.
  EXPECT_EQ(run_gaft(resume, true, 120).code, 0);
}

// A checkpoint that cannot be written (the disk is full; here the file-size limit of the process, with SIGXFSZ
// ignored so that a write fails with EFBIG as on a full disk): exit 3 naming the checkpoint and the reason, no
// staging folder left behind, no abort (LibTorch's archive writer used to abort and leave step-N.tmp).
TEST_F(Hostile, AFailedCheckpointWriteCleansUpAndSaysWhy) {
  const std::string out = dir.file("full");
  const std::string config = sft_config("full", 1);
  // The model file is about 1 MB; 256 KiB of file size is room for everything but the weights.
  const std::string cmd = "sh -c \"trap '' XFSZ; ulimit -f 256; exec timeout -s KILL 120 " + gaft_test::gaft_bin() +
                          " train --config " + config + "\" 2>&1";
  std::FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string text;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) text.append(buf, n);
  const int status = ::pclose(p);
  ASSERT_TRUE(WIFEXITED(status)) << text;
  EXPECT_EQ(WEXITSTATUS(status), 3) << text;
  EXPECT_NE(text.find("cannot write checkpoint '" + out + "/checkpoints/step-00000001'"), std::string::npos) << text;
  EXPECT_NE(text.find("File too large"), std::string::npos) << text;
  EXPECT_FALSE(fs::exists(out + "/checkpoints/step-00000001.tmp"));
  EXPECT_FALSE(fs::exists(out + "/checkpoints/step-00000001"));
}

// A 20 MB training record (before: tokenised whole, 8 GB of memory for a 50 MB line, std::bad_alloc on smaller
// machines): refused at once, naming the file and line.
TEST_F(Hostile, OversizeJsonlRecordsAreRefused) {
  const std::string data = dir.file("big.jsonl");
  {
    std::ofstream out(data);
    out << "{\"prompt\": \"Once\", \"response\": \"upon a time.\"}\n";
    out << "{\"prompt\": \"" << std::string(20u << 20, 'a') << "\", \"response\": \"b\"}\n";
  }
  const std::string cfg = sft_config("big", 1);
  expect_clean_failure("train --config " + cfg + " data.train=" + data, 3, {data + ":2", "more than the 16 MiB a line may have"});
}

// The committed corpus of malformed files (tests/fuzz/corpus, tools/make_fuzz_corpus.py) through the CLI, for the
// formats a command reads on its own: run configs (`config check`), tokenizer.json (`tokenize`), config.json and
// model.safetensors (`generate` on a copy of stories260K with the file replaced). Under a 4 GiB memory limit and
// a 60 s kill timer: a bad-* file ends in exit 2 or 3 with a message naming the file, never a signal,
// and no file makes gaft exit any other way (an ok-* file may still not fit stories260K).
TEST_F(Hostile, CommittedMalformedFilesThroughTheCli) {
  const fs::path corpus = fs::path(GAFT_SOURCE_DIR) / "tests" / "fuzz" / "corpus";
  const std::string model = model_copy("corpus_model");
  const std::string pristine = dir.file("pristine");
  fs::create_directories(pristine);
  for (const char* name : {"config.json", "model.safetensors"})
    fs::copy_file(fs::path(model) / name, fs::path(pristine) / name);
  // 4 GiB of address space; under AddressSanitizer (scripts/sanitize.sh sets ASAN_OPTIONS), whose shadow memory
  // needs terabytes of address space, 4 GiB of resident memory instead.
  const std::string memory_limit = std::getenv("ASAN_OPTIONS") ? "ASAN_OPTIONS=\"$ASAN_OPTIONS:hard_rss_limit_mb=4096\""
                                                               : "prlimit --as=4294967296";
  int runs = 0;
  const auto check = [&](const fs::path& input, const std::string& args, const std::string& named) {
    SCOPED_TRACE(input.string() + ": gaft " + args);
    const auto r = run_gaft(args, true, 60, memory_limit);
    ++runs;
    EXPECT_TRUE(r.code == 0 || r.code == 2 || r.code == 3) << "exit " << r.code << ": " << r.out;
    if (r.code != 0) EXPECT_NE(r.out.find(named), std::string::npos) << r.out;
    if (input.filename().string().rfind("bad-", 0) == 0) EXPECT_NE(r.code, 0) << r.out;
  };
  for (const auto& e : fs::directory_iterator(corpus / "run_config"))
    check(e.path(), "config check " + e.path().string(), e.path().string());
  const std::string tok = dir.file("corpus_tokenizer");
  fs::create_directories(tok);
  for (const auto& e : fs::directory_iterator(corpus / "tokenizer_json")) {
    fs::copy_file(e.path(), tok + "/tokenizer.json", fs::copy_options::overwrite_existing);
    check(e.path(), "tokenize --tokenizer " + tok + " --text 'Hello world'", tok + "/tokenizer.json");
  }
  for (const auto& [kind, name] : {std::pair<std::string, std::string>{"model_config", "config.json"},
                                   std::pair<std::string, std::string>{"safetensors", "model.safetensors"}}) {
    for (const auto& e : fs::directory_iterator(corpus / kind)) {
      fs::copy_file(e.path(), fs::path(model) / name, fs::copy_options::overwrite_existing);
      check(e.path(), generate(model), model + "/");
    }
    fs::copy_file(fs::path(pristine) / name, fs::path(model) / name, fs::copy_options::overwrite_existing);
  }
  EXPECT_GT(runs, 80);
}
