// dashctl convert: turns public claim/evidence datasets into DASH's ingest
// format (JSON Lines of dash.v1.ClaimRecord).
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "dash/v1/model.pb.h"
#include "dashctl/common.h"
#include "nlohmann/json.hpp"

namespace dash::ctl {
namespace {

v1::Stance StanceOf(const std::string& label) {
  if (label == "SUPPORTS") return v1::STANCE_SUPPORTS;
  if (label == "REFUTES") return v1::STANCE_CONTRADICTS;
  return v1::STANCE_NEUTRAL;
}

// Reads JSON Lines from `in`, converting each object with `convert` (which
// returns false to skip it) and writing the records to `out`, up to `limit`
// records (0: all). Malformed lines and values of the wrong JSON type are
// INVALID_ARGUMENT naming the line.
absl::Status ConvertJsonLines(
    std::istream& in, std::ostream& out, size_t limit, const std::vector<const char*>& required,
    const char* what, const std::function<bool(const nlohmann::json&, v1::ClaimRecord*)>& convert) {
  std::string line;
  size_t n = 0, line_no = 0;
  while ((limit == 0 || n < limit) && std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    bool ok = !j.is_discarded() && j.is_object();
    for (const char* key : required) ok = ok && j.contains(key);
    if (!ok) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_no, ": not a ", what, " record"));
    }
    v1::ClaimRecord rec;
    try {
      if (!convert(j, &rec)) continue;
    } catch (const nlohmann::json::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_no, ": ", e.what()));
    }
    out << ToJson(rec, false) << "\n";
    ++n;
  }
  return absl::OkStatus();
}

// CLIMATE-FEVER (Diggelmann et al. 2020): one claim per line with five
// Wikipedia evidence sentences labelled SUPPORTS / REFUTES / NOT_ENOUGH_INFO.
// Evidence ids are "Article:sentence"; sentence offsets in the article are not
// in the dataset, so spans are left unknown and the sentence index is kept as
// metadata.
absl::Status ConvertClimateFever(std::istream& in, std::ostream& out, size_t limit) {
  return ConvertJsonLines(
      in, out, limit, {"claim_id", "claim", "evidences"}, "CLIMATE-FEVER",
      [](const nlohmann::json& j, v1::ClaimRecord* rec) {
        v1::Claim* c = rec->mutable_claim();
        c->set_claim_id(absl::StrCat("climate-fever-", j.at("claim_id").get<std::string>()));
        c->set_text(j.at("claim").get<std::string>());
        (*c->mutable_metadata())["dataset"].set_string_value("climate-fever");
        (*c->mutable_metadata())["claim_label"].set_string_value(j.value("claim_label", ""));
        for (const auto& ev : j.at("evidences")) {
          v1::Evidence* e = rec->add_evidence();
          const std::string id = ev.at("evidence_id").get<std::string>();
          const std::string article = ev.value("article", "");
          e->set_evidence_id(id);
          e->set_stance(StanceOf(ev.value("evidence_label", "")));
          v1::Citation* cit = e->mutable_citation();
          cit->set_source_uri(absl::StrCat("https://en.wikipedia.org/wiki/",
                                           absl::StrReplaceAll(article, {{" ", "_"}})));
          cit->set_source_title(article);
          cit->set_quote(ev.at("evidence").get<std::string>());
          int64_t sentence = 0;
          const size_t colon = id.rfind(':');
          if (colon != std::string::npos && absl::SimpleAtoi(id.substr(colon + 1), &sentence)) {
            (*e->mutable_metadata())["sentence_index"].set_int_value(sentence);
          }
        }
        return true;
      });
}

// SciFact corpus (Wadden et al. 2020): each abstract becomes a claim whose
// text is the title and whose evidence are the abstract's sentences (stance
// NEUTRAL: they are not labelled against the title), each citing its byte
// span in the abstract (sentences joined by one space).
absl::Status ConvertScifactCorpus(std::istream& in, std::ostream& out, size_t limit) {
  return ConvertJsonLines(in, out, limit, {"doc_id", "sentences"}, "SciFact corpus",
                          [](const nlohmann::json& j, v1::ClaimRecord* rec) {
                            const int64_t doc_id = j.at("doc_id").get<int64_t>();
                            v1::Claim* c = rec->mutable_claim();
                            c->set_claim_id(absl::StrCat("scifact-", doc_id));
                            c->set_text(j.value("title", ""));
                            (*c->mutable_metadata())["dataset"].set_string_value("scifact");
                            (*c->mutable_metadata())["doc_id"].set_int_value(doc_id);
                            uint64_t offset = 0;
                            int index = 0;
                            for (const auto& sentence : j.at("sentences")) {
                              const std::string text = sentence.get<std::string>();
                              const uint64_t start = offset;
                              offset += text.size() + 1;
                              const int i = index++;
                              if (text.find_first_not_of(" \t\r\n") == std::string::npos) continue;
                              v1::Evidence* e = rec->add_evidence();
                              e->set_evidence_id(absl::StrCat("s", i));
                              e->set_stance(v1::STANCE_NEUTRAL);
                              v1::Citation* cit = e->mutable_citation();
                              cit->set_source_uri(absl::StrCat("scifact:corpus/", doc_id));
                              cit->set_source_title(c->text());
                              cit->set_quote(text);
                              cit->set_span_start(start);
                              cit->set_span_end(start + text.size());
                              (*e->mutable_metadata())["sentence_index"].set_int_value(i);
                            }
                            if (rec->evidence_size() == 0) {
                              fprintf(stderr, "dashctl: skipping SciFact doc %ld: no sentences\n",
                                      static_cast<long>(doc_id));
                              return false;
                            }
                            if (c->text().empty()) c->set_text(rec->evidence(0).citation().quote());
                            return true;
                          });
}

}  // namespace

void AddConvertCommands(CLI::App& app, std::function<int()>* run) {
  CLI::App* convert =
      app.add_subcommand("convert", "Convert a public dataset to ingest JSON Lines on stdout");
  convert->require_subcommand(1);
  auto file = std::make_shared<std::string>();
  auto limit = std::make_shared<size_t>(0);
  using Converter = absl::Status (*)(std::istream&, std::ostream&, size_t);
  auto add = [&](const char* name, const char* help, const char* file_help, const char* unit,
                 Converter convert_fn) {
    CLI::App* sub = convert->add_subcommand(name, help);
    sub->add_option("file", *file, file_help)->required()->check(CLI::ExistingFile);
    sub->add_option("--limit", *limit,
                    absl::StrCat("Convert at most this many ", unit, " (0: all)"));
    sub->callback([file, limit, run, convert_fn] {
      *run = [file, limit, convert_fn] {
        std::ifstream in(*file);
        absl::Status st = convert_fn(in, std::cout, *limit);
        if (!st.ok()) {
          fprintf(stderr, "dashctl: %s\n", std::string(st.message()).c_str());
          return static_cast<int>(kUsage);
        }
        return static_cast<int>(kOk);
      };
    });
  };
  add("climate-fever", "CLIMATE-FEVER claims.jsonl", "Path to claims.jsonl", "claims",
      &ConvertClimateFever);
  add("scifact", "SciFact corpus.jsonl (abstracts)", "Path to corpus.jsonl", "abstracts",
      &ConvertScifactCorpus);
}

}  // namespace dash::ctl
