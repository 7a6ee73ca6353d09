// gaft: the command-line front end. Parses arguments with CLI11 and calls into gaft_core; every
// command's work lives in the library. Exit codes: 0 ok, 2 usage or configuration, 3 bad input data,
// 1 internal error (see gaft/error.h).
#include <CLI/CLI.hpp>
#include <c10/util/Logging.h>

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "gaft/config.h"
#include "gaft/error.h"
#include "gaft/hub_cache.h"
#include "gaft/eval_report.h"
#include "gaft/read_file.h"
#include "gaft/generate.h"
#include "gaft/info.h"
#include "gaft/log.h"
#include "gaft/lora.h"
#include "gaft/tokenizer.h"
#include "gaft/stop_signal.h"
#include "gaft/trainer.h"

namespace {

void print_info(bool as_json) {
  const nlohmann::json info = gaft::runtime_info();
  if (as_json) {
    std::cout << info.dump(2) << "\n";
    return;
  }
  std::cout << "gaft " << info["gaft"].get<std::string>() << "\n"
            << "LibTorch " << info["libtorch"].get<std::string>() << "\n"
            << "CUDA kernels compiled: " << (info["cuda_kernels"].get<bool>() ? "yes" : "no") << "\n"
            << "LibTorch built with CUDA: " << (info["libtorch_cuda"].get<bool>() ? "yes" : "no") << "\n"
            << "CUDA usable here (driver and device): " << (info["cuda_available"].get<bool>() ? "yes" : "no") << "\n";
  for (const auto& d : info["devices"]) {
    std::cout << "  " << d["device"].get<std::string>();
    if (d.contains("name"))
      std::cout << ": " << d["name"].get<std::string>() << ", sm_" << d["capability"].get<std::string>() << ", "
                << d["memory_gib"].get<double>() << " GiB";
    if (d.contains("mkldnn"))
      std::cout << ": oneDNN " << (d["mkldnn"].get<bool>() ? "yes" : "no") << ", MKL "
                << (d["mkl"].get<bool>() ? "yes" : "no");
    std::cout << "\n";
  }
  std::cout << "threads: " << info["threads"].get<int>() << " intra-op, " << info["interop_threads"].get<int>()
            << " inter-op, " << info["hardware_threads"].get<unsigned>() << " hardware\n";
}

int report(const gaft::Error& e) {
  gaft::log::error(e.what());
  if (!e.hint().empty()) gaft::log::error(std::string("HINT: ") + e.hint());
  return static_cast<int>(e.exit_code());
}

}  // namespace

int main(int argc, char** argv) {
  // A failed LibTorch check (an allocation that cannot be served, a shape check) is an exception that main
  // reports, never an abort: with enforce made fatal, LibTorch logs and calls abort() instead of throwing.
  FLAGS_caffe2_use_fatal_for_enforce = false;
  CLI::App app{"gaft: alignment-aware fine-tuning of causal language models", "gaft"};
  app.set_version_flag("--version", std::string("gaft ") + GAFT_VERSION);
  app.require_subcommand(1);

  // gaft info
  bool info_json = false;
  CLI::App* info = app.add_subcommand("info", "Print the LibTorch version, CUDA support, devices and threads");
  info->add_flag("--json", info_json, "Print as JSON");

  // gaft config check FILE [key=value ...] | gaft config docs
  CLI::App* config = app.add_subcommand("config", "Validate configurations and document their keys");
  config->require_subcommand(1);
  std::string check_file;
  std::vector<std::string> check_overrides;
  bool check_quiet = false;
  CLI::App* check = config->add_subcommand("check", "Validate a config; print every problem, or the resolved config");
  check->add_option("file", check_file, "YAML config file")->required();
  check->add_option("overrides", check_overrides, "Overrides: section.key=value ...");
  check->add_flag("-q,--quiet", check_quiet, "Print nothing when the config is valid");
  CLI::App* docs = config->add_subcommand("docs", "Print the reference of every key (configs/README.md)");

  // gaft generate --model DIR --prompt TEXT [sampling options]
  std::string gen_model, gen_prompt;
  gaft::GenerationOptions gen;
  CLI::App* generate = app.add_subcommand("generate", "Continue a prompt with a model directory; print the completion");
  generate->add_option("--model", gen_model, "Model directory: config.json, model.safetensors, tokenizer.model")->required();
  generate->add_option("--prompt", gen_prompt, "Prompt text; empty starts from BOS")->required();
  generate->add_option("--max-new-tokens", gen.max_new_tokens, "Most tokens to generate")->capture_default_str()->check(CLI::PositiveNumber);
  generate->add_option("--temperature", gen.temperature, "0: greedy")->capture_default_str()->check(CLI::NonNegativeNumber);
  generate->add_option("--top-k", gen.top_k, "Sample among the k likeliest tokens; 0: all")->capture_default_str()->check(CLI::NonNegativeNumber);
  generate->add_option("--top-p", gen.top_p, "Nucleus sampling mass; 1: off")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  generate->add_option("--seed", gen.seed, "Sampling seed")->capture_default_str();
  bool gen_chat = false;
  generate->add_flag("--chat", gen_chat, "Wrap the prompt as a user turn in the model's chat template");

  // gaft tokenize --tokenizer PATH --text TEXT
  std::string tok_path, tok_text;
  bool tok_no_special = false;
  CLI::App* tokenize = app.add_subcommand("tokenize", "Print the token ids of a text, space separated");
  tokenize->add_option("--tokenizer", tok_path, "tokenizer.model (SentencePiece), tokenizer.json (byte-level BPE), or a directory holding one (or vocab.json + merges.txt)")->required();
  tokenize->add_option("--text", tok_text, "Text to encode")->required();
  tokenize->add_flag("--no-special", tok_no_special, "Leave out BOS/EOS");

  // gaft logits --model DIR --ids "1 2 3" --out FILE.safetensors
  std::string logits_model, logits_ids, logits_out;
  CLI::App* logits = app.add_subcommand("logits", "Write the float32 logits [T, V] of token ids to a safetensors file");
  logits->add_option("--model", logits_model, "Model directory")->required();
  logits->add_option("--ids", logits_ids, "Token ids, space separated")->required();
  logits->add_option("--out", logits_out, "Output .safetensors (tensor \"logits\")")->required();

  // gaft train --config FILE [key=value ...] [--resume auto|never|DIR]
  std::string train_config, train_resume;
  std::vector<std::string> train_overrides;
  CLI::App* train = app.add_subcommand("train", "Fine-tune a model as the config says (sft, gaft or classifier)");
  train->add_option("--config", train_config, "YAML run config")->required();
  train->add_option("overrides", train_overrides, "Overrides: section.key=value ...");
  train->add_option("--resume", train_resume, "auto (newest checkpoint), never, or a checkpoint directory");
  bool train_dry_run = false;
  train->add_flag("--dry-run", train_dry_run,
                  "Check the config and print this process's rank, world size, master address and device, and (rank 0) the "
                  "per-rank memory plan of a step under each distributed.sharding level; train nothing");

  // gaft eval --config FILE [key=value ...] [--model DIR ...] [--responses FILE ...]
  std::string eval_config;
  std::vector<std::string> eval_overrides, eval_models, eval_responses;
  CLI::App* eval = app.add_subcommand("eval", "Generate and score responses on evaluation suites; write report.json and report.md");
  eval->add_option("--config", eval_config, "YAML eval config (configs/eval.yaml)")->required();
  eval->add_option("overrides", eval_overrides, "Overrides: section.key=value ...");
  eval->add_option("--model", eval_models, "Model directory, or NAME=DIR, to evaluate (repeat to compare; replaces the config's models)")
      ->allow_extra_args(false);  // one folder per --model: what follows is an override
  eval->add_option("--responses", eval_responses,
                   "File of responses made elsewhere to judge instead of generating (gaft JSONL as responses.jsonl, "
                   "XSTest's completions CSV, HaluEval's general_data.json; repeatable)")
      ->allow_extra_args(false);

  // gaft export --merge ADAPTER --out DIR [--base DIR] [--dtype D]
  std::string export_adapter, export_out, export_base, export_dtype = "auto";
  bool export_merge = false;
  CLI::App* exporter = app.add_subcommand("export", "Write a PEFT LoRA adapter merged into its base as a full Hugging Face folder");
  exporter->add_flag("--merge", export_merge, "Fold the adapter into the base weights (required: the only export there is)")->required();
  exporter->add_option("adapter", export_adapter, "PEFT adapter folder (adapter_config.json, adapter_model.safetensors)")->required();
  exporter->add_option("--out", export_out, "Output model folder")->required();
  exporter->add_option("--base", export_base, "Base model folder; default: the adapter's base_model_name_or_path");
  exporter->add_option("--dtype", export_dtype, "Stored dtype: auto (the base's), float32, bfloat16 or float16")
      ->check(CLI::IsMember({"auto", "float32", "bfloat16", "float16"}));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : static_cast<int>(gaft::ExitCode::kUsage);
  }

  try {
    if (*info) {
      print_info(info_json);
    } else if (*check) {
      std::string text;  // an unreadable file is reported by load_config below
      try {
        text = gaft::read_text_file(check_file);
      } catch (const gaft::Error&) {
      }
      if (gaft::is_eval_config_text(text)) {
        const gaft::EvalConfig cfg = gaft::load_eval_config(check_file, check_overrides);
        if (!check_quiet) std::cout << "# " << check_file << ": valid eval config\n" << gaft::eval_config_to_yaml(cfg);
      } else {
        const gaft::RunConfig cfg = gaft::load_config(check_file, check_overrides);
        if (!check_quiet) std::cout << "# " << check_file << ": valid\n" << gaft::config_to_yaml(cfg);
      }
    } else if (*docs) {
      std::cout << gaft::config_reference_markdown();
    } else if (*generate) {
      std::cout << gaft::complete_text(gaft::resolve_model_path(gen_model), gen_prompt, gen, gen_chat) << "\n";
    } else if (*tokenize) {
      const gaft::Tokenizer tok = gaft::Tokenizer::load(tok_path);
      const std::vector<int64_t> ids = tok_no_special ? tok.encode(tok_text, false, false) : tok.encode(tok_text);
      for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? " " : "") << ids[i];
      std::cout << "\n";
    } else if (*train) {
      if (!train_resume.empty()) train_overrides.push_back("checkpoint.resume=" + train_resume);
      const gaft::RunConfig cfg = gaft::load_config(train_config, train_overrides);
      gaft::log::setup(gaft::log::parse_level(cfg.logging.level));
      if (train_dry_run) {
        std::cout << gaft::describe_launch(cfg) << std::endl;
        std::cout << gaft::describe_memory(cfg) << std::flush;
        return 0;
      }
      const gaft::TrainSummary s = gaft::train(cfg);
      if (s.stop_signal) return gaft::kExitRequeue;
      std::cout << s.model_dir << "\n";
    } else if (*eval) {
      const gaft::EvalConfig cfg = gaft::load_eval_config(eval_config, eval_overrides, eval_models, eval_responses);
      const nlohmann::json report = gaft::eval::run_eval(cfg);
      std::cout << gaft::eval::report_markdown(report);
    } else if (*exporter) {
      std::optional<at::ScalarType> dtype;
      if (export_dtype == "float32") dtype = at::kFloat;
      if (export_dtype == "bfloat16") dtype = at::kBFloat16;
      if (export_dtype == "float16") dtype = at::kHalf;
      gaft::export_merged(gaft::resolve_model_path(export_adapter), gaft::resolve_model_path(export_base), export_out, dtype);
      std::cout << export_out << "\n";
    } else if (*logits) {
      gaft::write_logits(gaft::resolve_model_path(logits_model), gaft::parse_token_ids(logits_ids), logits_out);
    }
    return 0;
  } catch (const gaft::ConfigError& e) {
    // Every problem on its own line, to stderr.
    std::cerr << e.what() << "\n";
    if (!e.hint().empty()) std::cerr << "HINT: " << e.hint() << "\n";
    return static_cast<int>(e.exit_code());
  } catch (const gaft::Error& e) {
    return report(e);
  } catch (const c10::Error& e) {
    // An allocation LibTorch cannot serve (c10::OutOfMemoryError on a GPU, an enforce failure in the CPU
    // allocator) is a resource limit the user can act on, not a bug.
    const std::string what = e.what_without_backtrace();
    if (dynamic_cast<const c10::OutOfMemoryError*>(&e) || what.find("can't allocate memory") != std::string::npos) {
      gaft::log::error("out of memory: " + what.substr(0, what.find('\n')));
      gaft::log::error("HINT: a smaller batch (train.batch_size, generation.batch_size), shorter sequences "
                       "(max_new_tokens, max_length), or a machine with more memory");
      return static_cast<int>(gaft::ExitCode::kData);
    }
    gaft::log::error(std::string("internal error: ") + what);
    return static_cast<int>(gaft::ExitCode::kInternal);
  } catch (const std::exception& e) {
    gaft::log::error(std::string("internal error: ") + e.what());
    return static_cast<int>(gaft::ExitCode::kInternal);
  }
}
