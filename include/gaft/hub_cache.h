// Hugging Face hub names for models already downloaded: `org/name` or `org/name@revision` resolved in the cache
// that huggingface_hub writes, without any network access.
//
//   $HF_HUB_CACHE (else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub)
//     models--org--name/
//       refs/main                 the commit hash the branch or tag pointed to when it was downloaded
//       snapshots/<commit>/...    the files (links into ../../blobs)
//       blobs/<sha>
//
// A revision is a branch or tag (refs/<revision>) or a commit hash (snapshots/<hash>, or a unique prefix of
// at least 7 hex digits). A path that exists on disk always wins over a hub name of the same spelling.
#pragma once

#include <functional>
#include <optional>
#include <string>

namespace gaft {

// "org/name" or "org/name@revision" with hub-valid parts (letters, digits, '.', '_', '-'; no '--' or '..').
bool is_hub_name(const std::string& spec);

// The hub cache folder from the environment (getenv injectable for tests).
std::string hub_cache_dir(const std::function<const char*(const char*)>& getenv = nullptr);

// `spec` unchanged when it exists on disk or is not a hub name; else the snapshot folder it names in the
// cache. DataError naming the cache folder, what is missing and how to download it when it is not there.
std::string resolve_model_path(const std::string& spec, const std::function<const char*(const char*)>& getenv = nullptr);

}  // namespace gaft
