// Hub names resolved in a Hugging Face cache laid out as huggingface_hub writes it (hub_cache.h).
#include "gaft/hub_cache.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "common/run_gaft.h"
#include "core/test_util.h"
#include "gaft/error.h"

namespace {

namespace fs = std::filesystem;
using gaft_test::TempDir;

const std::string kModel = gaft_test::kStories + "/hf";
const char* kMain = "0123456789abcdef0123456789abcdef01234567";
const char* kTag = "fedcba9876543210fedcba9876543210fedcba98";

void write(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

// <cache>/models--<org>--<name> as huggingface_hub lays it out: every file is a blob named by its hash,
// each snapshot holds relative links ../../blobs/<hash>, refs/<branch or tag> holds a commit hash (no
// newline). Snapshot kMain ("main") holds the stories260K files; kTag ("v1.0") holds only its config.json.
void make_cache(const fs::path& cache, const std::string& org, const std::string& name) {
  const fs::path repo = cache / ("models--" + org + "--" + name);
  int blob = 0;
  for (const auto& [commit, files] : std::map<std::string, std::vector<std::string>>{
           {kMain, {"config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"}},
           {kTag, {"config.json"}}}) {
    for (const std::string& f : files) {
      const std::string hash = "blob" + std::to_string(blob++);
      fs::create_directories(repo / "blobs");
      fs::copy_file(fs::path(kModel) / f, repo / "blobs" / hash);
      fs::create_directories(repo / "snapshots" / commit);
      fs::create_symlink(fs::path("..") / ".." / "blobs" / hash, repo / "snapshots" / commit / f);
    }
  }
  write(repo / "refs" / "main", kMain);
  write(repo / "refs" / "v1.0", kTag);
}

std::function<const char*(const char*)> env(std::map<std::string, std::string> vars) {
  auto held = std::make_shared<std::map<std::string, std::string>>(std::move(vars));
  return [held](const char* name) -> const char* {
    const auto it = held->find(name);
    return it == held->end() ? nullptr : it->second.c_str();
  };
}

}  // namespace

TEST(HubCache, HubNames) {
  for (const char* good : {"meta-llama/Llama-3.1-8B-Instruct", "google/shieldgemma-2b@main", "org/name@v1.0",
                           "org/name@0123456", "Qwen/Qwen2.5-0.5B@refs/pr/1"})
    EXPECT_TRUE(gaft::is_hub_name(good)) << good;
  for (const char* bad : {"", "name", "/abs/path", "./org/name", "a/b/c", "org/name@", "org--x/name", "org/../x",
                          "org/name@../x", "-org/name", "org/name.", "org/na me"})
    EXPECT_FALSE(gaft::is_hub_name(bad)) << bad;
}

TEST(HubCache, CacheFolderFromTheEnvironmentAsHuggingfaceHubReadsIt) {
  EXPECT_EQ(gaft::hub_cache_dir(env({{"HF_HUB_CACHE", "/c"}, {"HF_HOME", "/h"}})), "/c");
  EXPECT_EQ(gaft::hub_cache_dir(env({{"HF_HOME", "/h"}, {"XDG_CACHE_HOME", "/x"}})), "/h/hub");
  EXPECT_EQ(gaft::hub_cache_dir(env({{"XDG_CACHE_HOME", "/x"}, {"HOME", "/home/u"}})), "/x/huggingface/hub");
  EXPECT_EQ(gaft::hub_cache_dir(env({{"HOME", "/home/u"}})), "/home/u/.cache/huggingface/hub");
}

TEST(HubCache, ResolvesBranchesTagsAndCommitsToSnapshots) {
  TempDir dir("hub");
  if (!fs::exists(kModel)) GTEST_SKIP() << "no shared folder";
  make_cache(dir.file("hub"), "acme", "tiny-llama");
  const auto e = env({{"HF_HUB_CACHE", dir.file("hub")}});
  const std::string repo = dir.file("hub/models--acme--tiny-llama");
  EXPECT_EQ(gaft::resolve_model_path("acme/tiny-llama", e), repo + "/snapshots/" + kMain);
  EXPECT_EQ(gaft::resolve_model_path("acme/tiny-llama@main", e), repo + "/snapshots/" + kMain);
  EXPECT_EQ(gaft::resolve_model_path("acme/tiny-llama@v1.0", e), repo + "/snapshots/" + kTag);
  EXPECT_EQ(gaft::resolve_model_path(std::string("acme/tiny-llama@") + kTag, e), repo + "/snapshots/" + kTag);
  EXPECT_EQ(gaft::resolve_model_path("acme/tiny-llama@fedcba98", e), repo + "/snapshots/" + kTag);  // a prefix
  // Paths are not hub names, and an existing folder wins over a hub name of the same spelling.
  EXPECT_EQ(gaft::resolve_model_path(kModel, e), kModel);
  const fs::path cwd = fs::current_path();
  fs::create_directories(dir.file("local/acme/tiny-llama"));
  fs::current_path(dir.file("local"));
  EXPECT_EQ(gaft::resolve_model_path("acme/tiny-llama", e), "acme/tiny-llama");
  fs::current_path(cwd);
}

TEST(HubCache, MissingModelsAndRevisionsSayWhatIsThereAndHowToDownload) {
  TempDir dir("hub_missing");
  if (!fs::exists(kModel)) GTEST_SKIP() << "no shared folder";
  make_cache(dir.file("hub"), "acme", "tiny-llama");
  const auto e = env({{"HF_HUB_CACHE", dir.file("hub")}});
  const auto message = [&](const std::string& spec) {
    try {
      gaft::resolve_model_path(spec, e);
    } catch (const gaft::DataError& err) {
      return std::string(err.what()) + " | " + err.hint();
    }
    return std::string("no error");
  };
  const std::string none = message("acme/other");
  EXPECT_NE(none.find("has no models--acme--other"), std::string::npos) << none;
  EXPECT_NE(none.find("hf download acme/other"), std::string::npos) << none;
  const std::string rev = message("acme/tiny-llama@v2");
  EXPECT_NE(rev.find("no revision 'v2' (refs: "), std::string::npos) << rev;
  EXPECT_NE(rev.find("main"), std::string::npos) << rev;
  EXPECT_NE(rev.find("v1.0"), std::string::npos) << rev;
  EXPECT_NE(rev.find("--revision v2"), std::string::npos) << rev;
  fs::remove_all(dir.file("hub/models--acme--tiny-llama/snapshots/") + kTag);
  const std::string gone = message("acme/tiny-llama@v1.0");
  EXPECT_NE(gone.find("is missing (an interrupted download?)"), std::string::npos) << gone;
}

// The commands take hub names wherever they take a model folder: config keys and --model options.
TEST(HubCache, CommandsAcceptHubNames) {
  TempDir dir("hub_cli");
  if (!fs::exists(kModel)) GTEST_SKIP() << "no shared folder";
  make_cache(dir.file("hub"), "acme", "tiny-llama");
  const std::string env_prefix = "HF_HUB_CACHE=" + dir.file("hub");
  const auto direct = gaft_test::run_gaft("generate --model " + kModel + " --prompt 'Once upon' --max-new-tokens 8 --temperature 0");
  ASSERT_EQ(direct.code, 0) << direct.out;
  const auto hub = gaft_test::run_gaft("generate --model acme/tiny-llama --prompt 'Once upon' --max-new-tokens 8 --temperature 0",
                                       true, 0, env_prefix);
  ASSERT_EQ(hub.code, 0) << hub.out;
  EXPECT_EQ(hub.out, direct.out);
  // In a run config: resolved at load (the dry run's memory plan reads the snapshot's config.json) ...
  gaft_test::write_bytes(dir.file("run.yaml"), "run: {output_dir: " + dir.file("out") + "}\nmodel: {path: acme/tiny-llama}\n"
                                               "data: {train: " + dir.file("train.jsonl") + "}\nobjective: {kind: sft}\n");
  const auto dry = gaft_test::run_gaft("train --config " + dir.file("run.yaml") + " --dry-run", true, 0, env_prefix);
  ASSERT_EQ(dry.code, 0) << dry.out;
  EXPECT_NE(dry.out.find("memory plan per rank"), std::string::npos) << dry.out;
  // ... and a name that is not in the cache is an error of its key.
  const auto missing = gaft_test::run_gaft("train --config " + dir.file("run.yaml") + " --dry-run model.path=acme/absent",
                                           true, 0, env_prefix);
  gaft_test::expect_exit(missing, 2, {"model.path", "models--acme--absent", "hf download acme/absent"});
}
