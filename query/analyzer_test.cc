#include "query/analyzer.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dash::query {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(AnalyzerTest, StemsFoldsAndDropsStopwords) {
  EXPECT_THAT(AnalyzeText("The polar bears are RUNNING into the melting ice."),
              ElementsAre("polar", "bear", "run", "melt", "ice"));
}

TEST(AnalyzerTest, KeepsNumbersAndDropsPunctuation) {
  EXPECT_THAT(AnalyzeText("CO2 rose 1.1 degrees -- (since 1850)!"),
              ElementsAre("co2", "rose", "1.1", "degre", "sinc", "1850"));
}

TEST(AnalyzerTest, SegmentsAndFoldsUnicode) {
  // Case folding beyond ASCII: German sharp s folds to "ss", Greek sigma forms agree.
  EXPECT_EQ(AnalyzeText("STRASSE"), AnalyzeText("stra\xC3\x9F"
                                                "e"));
  EXPECT_EQ(AnalyzeText("\xCE\xA3\xCE\x99\xCE\xA3"), AnalyzeText("\xCF\x83\xCE\xB9\xCF\x82"));
  // Accented words stay whole.
  EXPECT_THAT(AnalyzeText("caf\xC3\xA9"), ElementsAre("caf\xC3\xA9"));
}

TEST(AnalyzerTest, QueryAndDocumentFormsMeet) {
  EXPECT_EQ(AnalyzeText("warming"), AnalyzeText("warmed"));
  EXPECT_EQ(AnalyzeText("Extinctions"), AnalyzeText("extinction"));
}

TEST(AnalyzerTest, EmptyAndStopwordOnlyTextGiveNoTerms) {
  EXPECT_THAT(AnalyzeText(""), IsEmpty());
  EXPECT_THAT(AnalyzeText("the and of, to!"), IsEmpty());
  EXPECT_THAT(AnalyzeText(std::string(200, 'x')), IsEmpty());  // over-long token
}

}  // namespace
}  // namespace dash::query
