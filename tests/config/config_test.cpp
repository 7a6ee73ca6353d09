// Configuration loading: valid examples, every kind of malformed file with its exact key and line,
// overrides, round trip through the resolved YAML, and the generated reference staying in sync.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gaft/config.h"

namespace gaft {
namespace {

const std::string kData = std::string(GAFT_TEST_DATA) + "/configs/";

std::vector<ConfigIssue> issues_of(const std::string& file, const std::vector<std::string>& overrides = {}) {
  try {
    load_config(kData + file, overrides);
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.exit_code(), ExitCode::kUsage);
    return e.issues();
  }
  ADD_FAILURE() << file << " was accepted";
  return {};
}

std::string dump(const std::vector<ConfigIssue>& issues) {
  std::string out;
  for (const auto& i : issues) out += "  " + i.str() + "\n";
  return out;
}

// Exactly one issue, at `file:line:column`, for `key`, whose message contains `text`.
void expect_single(const std::string& file, int line, int column, const std::string& key, const std::string& text,
                   const std::vector<std::string>& overrides = {}) {
  const auto issues = issues_of(file, overrides);
  ASSERT_EQ(issues.size(), 1u) << dump(issues);
  EXPECT_EQ(issues[0].where, kData + file + ":" + std::to_string(line) + ":" + std::to_string(column)) << dump(issues);
  EXPECT_EQ(issues[0].key, key);
  EXPECT_NE(issues[0].message.find(text), std::string::npos) << issues[0].message;
  // The message of the exception carries file, line and key too.
  EXPECT_NE(issues[0].str().find(file + ":" + std::to_string(line) + ":"), std::string::npos);
}

TEST(ConfigMalformed, TypoInKeySuggestsTheRightOne) {
  expect_single("typo_key.yaml", 8, 3, "optimizer.lrr", "unknown key 'lrr' in section 'optimizer' (did you mean 'optimizer.lr'?)");
}

TEST(ConfigMalformed, WrongType) {
  expect_single("wrong_type.yaml", 8, 3, "train.batch_size", "expected an integer in [1, 65536], got 'eight'");
}

TEST(ConfigMalformed, NegativeLearningRate) {
  expect_single("negative_lr.yaml", 8, 3, "optimizer.lr", "expected a number > 0, got -0.001");
}

TEST(ConfigMalformed, UnknownObjective) {
  expect_single("unknown_objective.yaml", 6, 3, "objective.kind", "expected one of sft, gaft, filter, classifier, got 'dpo'");
}

TEST(ConfigMalformed, DuplicateKey) {
  expect_single("duplicate_key.yaml", 9, 3, "optimizer.lr", "duplicate key 'lr'");
}

TEST(ConfigMalformed, SectionThatIsNotAMapping) {
  expect_single("section_not_mapping.yaml", 7, 1, "optimizer", "expected a mapping, got '0.001'");
}

TEST(ConfigMalformed, GaftWithoutScorerHeads) {
  expect_single("gaft_without_scorer.yaml", 8, 3, "scorer.heads", "needs at least one scorer head");
}

TEST(ConfigMalformed, RlooWithOneSample) {
  expect_single("rloo_one_sample.yaml", 12, 3, "rollout.num_samples", "needs at least 2 samples per prompt, got 1");
}

TEST(ConfigMalformed, LmJudgeWithoutTemplate) {
  expect_single("lm_judge_no_template.yaml", 11, 7, "scorer.heads.1.prompt_template", "containing {response}");
}

TEST(ConfigMalformed, WarmupLongerThanRun) {
  expect_single("warmup_too_long.yaml", 10, 3, "schedule.warmup_steps", "longer than train.max_steps 10");
}

TEST(ConfigMalformed, KlBetaWithoutKl) {
  expect_single("kl_beta_without_kl.yaml", 7, 3, "objective.kl_beta", "objective.kl is 'none'");
}

TEST(ConfigMalformed, HeadsNotAList) {
  expect_single("heads_not_list.yaml", 8, 3, "scorer.heads", "expected a list of sections, got a mapping");
}

TEST(ConfigMalformed, CategoryWithoutAbstentionTemplate) {
  expect_single("missing_abstention_template.yaml", 11, 7, "scorer.heads.0.category",
                "no abstention template for category 'toxicity'");
}

TEST(ConfigMalformed, DuplicateHeadName) {
  expect_single("duplicate_head.yaml", 11, 7, "scorer.heads.1.name", "duplicate scorer head name 'safety'");
}

TEST(ConfigMalformed, MissingRequiredSection) {
  const auto issues = issues_of("missing_section.yaml");
  ASSERT_EQ(issues.size(), 1u) << dump(issues);
  EXPECT_EQ(issues[0].where, kData + "missing_section.yaml");
  EXPECT_EQ(issues[0].key, "model");
  EXPECT_EQ(issues[0].message, "missing required section 'model'");
}

TEST(ConfigMalformed, YamlSyntaxError) {
  const auto issues = issues_of("yaml_syntax.yaml");
  ASSERT_EQ(issues.size(), 1u) << dump(issues);
  EXPECT_EQ(issues[0].key, "(syntax)");
  EXPECT_EQ(issues[0].where.rfind(kData + "yaml_syntax.yaml:", 0), 0u) << issues[0].where;
  EXPECT_NE(issues[0].message.find("not valid YAML"), std::string::npos);
}

TEST(ConfigMalformed, TopLevelList) {
  const auto issues = issues_of("top_level_list.yaml");
  ASSERT_EQ(issues.size(), 1u) << dump(issues);
  EXPECT_EQ(issues[0].key, "(top level)");
  EXPECT_EQ(issues[0].message, "expected a mapping, got a list");
}

TEST(ConfigMalformed, EveryProblemIsReportedAtOnce) {
  const auto issues = issues_of("several_errors.yaml");
  ASSERT_EQ(issues.size(), 3u) << dump(issues);
  EXPECT_EQ(issues[0].key, "model.dtype");
  EXPECT_EQ(issues[0].where, kData + "several_errors.yaml:4:3");
  EXPECT_EQ(issues[1].key, "data.shufle");
  EXPECT_EQ(issues[1].where, kData + "several_errors.yaml:7:3");
  EXPECT_NE(issues[1].message.find("did you mean 'data.shuffle'?"), std::string::npos);
  EXPECT_EQ(issues[2].key, "rollout.top_p");
  EXPECT_EQ(issues[2].where, kData + "several_errors.yaml:11:3");
  EXPECT_NE(issues[2].message.find("expected a number in (0, 1], got 1.5"), std::string::npos);
}

TEST(ConfigMalformed, EmptyFileListsEveryRequiredSection) {
  try {
    load_config_text("", "empty.yaml");
    FAIL() << "accepted";
  } catch (const ConfigError& e) {
    ASSERT_EQ(e.issues().size(), 3u);
    EXPECT_EQ(e.issues()[0].message, "missing required section 'model'");
    EXPECT_EQ(e.issues()[1].message, "missing required section 'data'");
    EXPECT_EQ(e.issues()[2].message, "missing required section 'objective'");
  }
}

TEST(ConfigMalformed, TopLevelKeyOfASectionIsPointedThere) {
  try {
    load_config_text("model: {path: m}\ndata: {train: t}\nobjective: {kind: sft}\nwarmup_steps: 3\n", "x.yaml");
    FAIL() << "accepted";
  } catch (const ConfigError& e) {
    ASSERT_EQ(e.issues().size(), 1u);
    EXPECT_EQ(e.issues()[0].where, "x.yaml:4:1");
    EXPECT_NE(e.issues()[0].message.find("did you mean 'schedule.warmup_steps'?"), std::string::npos);
  }
}

TEST(ConfigMalformed, MissingFileIsAUsageError) {
  try {
    load_config(kData + "no_such_file.yaml");
    FAIL() << "accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("no_such_file.yaml"), std::string::npos);
  }
}

// ---- overrides ----

TEST(ConfigOverrides, ValuesAreParsedAsYaml) {
  const RunConfig c = load_config(kData + "rloo_one_sample.yaml",
                                  {"rollout.num_samples=8", "optimizer.lr=2e-5", "rollout.stop=[\"###\", END]",
                                   "scorer.heads.0.path=/models/guard", "data.shuffle=false", "run.name=x=y"});
  EXPECT_EQ(c.rollout.num_samples, 8);
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 2e-5);
  EXPECT_EQ(c.rollout.stop, (std::vector<std::string>{"###", "END"}));
  EXPECT_EQ(c.scorer.heads.at(0).path, "/models/guard");
  EXPECT_FALSE(c.data.shuffle);
  EXPECT_EQ(c.run.name, "x=y");  // only the first '=' separates
}

TEST(ConfigOverrides, FixAnInvalidFile) {
  const RunConfig c = load_config(kData + "negative_lr.yaml", {"optimizer.lr=1e-4"});
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 1e-4);
}

TEST(ConfigOverrides, BadSyntaxIsReported) {
  const auto issues = issues_of("negative_lr.yaml", {"optimizer.lr", "..lr=3", "optimizer.lr=abc",
                                                     "optimizer.lr.x=1", "scorer.heads.4.path=x"});
  // The bad value of optimizer.lr replaces the file's, so the file's own problem is gone.
  ASSERT_EQ(issues.size(), 5u) << dump(issues);
  EXPECT_EQ(issues[0].where, "override 'optimizer.lr'");
  EXPECT_NE(issues[0].message.find("expected key.sub=value, got no '='"), std::string::npos);
  EXPECT_EQ(issues[1].where, "override '..lr=3'");
  EXPECT_NE(issues[1].message.find("non-empty key parts"), std::string::npos);
  EXPECT_EQ(issues[2].where, "override 'optimizer.lr.x=1'");
  EXPECT_EQ(issues[3].where, "override 'scorer.heads.4.path=x'");
  EXPECT_EQ(issues[4].where, "override 'optimizer.lr=abc'");
  EXPECT_EQ(issues[4].key, "optimizer.lr");
  EXPECT_NE(issues[4].message.find("got 'abc'"), std::string::npos);
}

TEST(ConfigOverrides, UnknownOverrideKey) {
  const auto issues = issues_of("negative_lr.yaml", {"optimizer.lr=0.1", "optimiser.lr=0.1"});
  ASSERT_EQ(issues.size(), 1u) << dump(issues);
  EXPECT_EQ(issues[0].where, "override 'optimiser.lr=0.1'");
  EXPECT_NE(issues[0].message.find("did you mean 'optimizer'?"), std::string::npos);
}

// ---- valid files ----

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(ConfigValid, ExamplesLoadWithTheirValues) {
  const std::string dir = std::string(GAFT_SOURCE_DIR) + "/configs/";
  const RunConfig g = load_config(dir + "gaft.yaml");
  EXPECT_EQ(g.objective.kind, Objective::kGaft);
  ASSERT_EQ(g.scorer.heads.size(), 2u);
  EXPECT_EQ(g.scorer.heads[1].kind, ScorerKind::kLmJudge);
  EXPECT_EQ(g.scorer.heads[0].aligned_label, 0);
  EXPECT_EQ(g.rollout.num_samples, 4);
  EXPECT_DOUBLE_EQ(g.rollout.top_p, 0.95);
  EXPECT_EQ(g.precision.compute, DType::kBFloat16);
  EXPECT_EQ(g.objective.kl, KlMode::kReward);
  for (const char* f : {"sft.yaml", "classifier.yaml"}) EXPECT_NO_THROW(load_config(dir + f)) << f;
}

TEST(ConfigValid, DefaultsAreThoseOfTheStructs) {
  const RunConfig c = load_config_text("model: {path: m}\ndata: {train: t}\nobjective: {kind: sft}\n", "min.yaml");
  const RunConfig d;
  EXPECT_EQ(c.model.path, "m");
  EXPECT_EQ(c.rollout.num_samples, d.rollout.num_samples);
  EXPECT_EQ(c.gate.mode, GateMode::kUncertainty);
  EXPECT_DOUBLE_EQ(c.abstention.delta, 0.5);
  EXPECT_EQ(c.abstention.templates.at("factuality"), "I don't know.");
}

TEST(ConfigValid, ResolvedYamlRoundTrips) {
  const RunConfig a = load_config(std::string(GAFT_SOURCE_DIR) + "/configs/gaft.yaml", {"optimizer.lr=3e-6"});
  const std::string yaml = config_to_yaml(a);
  const RunConfig b = load_config_text(yaml, "resolved.yaml");
  EXPECT_EQ(config_to_yaml(b), yaml);
  EXPECT_DOUBLE_EQ(b.optimizer.lr, 3e-6);
  EXPECT_EQ(b.scorer.heads.at(1).prompt_template, a.scorer.heads.at(1).prompt_template);
}

TEST(ConfigValid, ResolvedConfigIsWrittenAtomically) {
  const auto dir = std::filesystem::temp_directory_path() / ("gaft_cfg_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  const RunConfig a = load_config(std::string(GAFT_SOURCE_DIR) + "/configs/sft.yaml");
  write_resolved_config(a, (dir / "run").string());
  write_resolved_config(a, (dir / "run").string());  // replacing is fine
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir / "run")) names.push_back(e.path().filename());
  EXPECT_EQ(names, std::vector<std::string>{"config.yaml"});
  EXPECT_EQ(config_to_yaml(load_config((dir / "run" / "config.yaml").string())), config_to_yaml(a));
  std::filesystem::remove_all(dir);
}

TEST(ConfigValid, ReferenceDocumentIsInSyncWithTheTable) {
  const std::string committed = read(std::string(GAFT_SOURCE_DIR) + "/configs/README.md");
  EXPECT_EQ(committed, config_reference_markdown())
      << "configs/README.md is stale: regenerate it with `build/gaft config docs > configs/README.md`";
  for (const char* key : {"`lr`", "`num_samples`", "`delta`", "`heads`", "## `scorer.heads[]`", "required"})
    EXPECT_NE(committed.find(key), std::string::npos) << key;
}

// YAML nested 10^5 levels deep (flow or block) ends in a ConfigError naming the file and the depth, never a
// stack overflow.
TEST(ConfigMalformed, DeepNestingIsRefused) {
  const std::string flow = "train: " + std::string(100000, '[') + "1" + std::string(100000, ']') + "\n";
  std::string block;
  for (int i = 0; i < 3000; ++i) block += std::string(2 * static_cast<size_t>(i), ' ') + "k:\n";
  for (const std::string& yaml : {flow, block}) {
    try {
      load_config_text(yaml, "deep.yaml");
      ADD_FAILURE() << "accepted";
    } catch (const ConfigError& e) {
      ASSERT_EQ(e.issues().size(), 1u);
      EXPECT_EQ(e.issues()[0].where.rfind("deep.yaml:", 0), 0u) << e.issues()[0].where;
      EXPECT_NE(e.issues()[0].message.find("levels deep"), std::string::npos) << e.issues()[0].message;
    }
  }
}

}  // namespace
}  // namespace gaft
