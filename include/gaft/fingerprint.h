// Which judges a model was trained against. gaft train writes the identities of the scorer heads a run
// optimised (their paths and the SHA-256 of their weights) into every model folder it saves, and gaft eval
// warns when a judge of harm, hallucination or refusal is one of them: a model is never graded only by a judge
// it was trained against (a head the policy gradient maximised hides reward hacking by construction).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace gaft {

// The file, inside a saved model folder, that lists the scorer heads its run was trained against.
inline constexpr const char* kTrainingScorersFile = "gaft_training.json";

// SHA-256 (hex) of a model folder's weights: the *.safetensors files directly in `dir`, in name order, each
// contributing its name and its bytes. DataError when the folder holds none. For an adapter folder, the
// adapter's own files.
std::string weights_sha256(const std::string& dir);

struct TrainingScorer {
  std::string name;      // the head's name in the training config
  std::string category;  // its category
  std::string path;      // absolute path when trained
  std::string sha256;    // weights_sha256 of that folder when trained
};

// gaft_training.json: {"gaft_version", "objective", "scorers": [{name, category, path, sha256}]}.
nlohmann::json training_record(const std::string& objective, const std::vector<TrainingScorer>& scorers);
// The scorers listed in `model_dir`/gaft_training.json; empty when the folder has no such file. DataError,
// naming the file, when it is malformed.
std::vector<TrainingScorer> read_training_scorers(const std::string& model_dir);

}  // namespace gaft
