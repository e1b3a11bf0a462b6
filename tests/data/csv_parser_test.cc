#include "data/csv_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace shardrec::data {
namespace {

std::vector<std::string> Split(std::string text, char delimiter = ',', int* newlines = nullptr, bool* unterminated = nullptr) {
  std::vector<std::string_view> fields;
  SplitResult r = SplitRecord(text.data(), text.data() + text.size(), delimiter, &fields);
  if (newlines) *newlines = r.newlines;
  if (unterminated) *unterminated = r.unterminated_quote;
  return std::vector<std::string>(fields.begin(), fields.end());
}

using Fields = std::vector<std::string>;

TEST(CsvParserTest, PlainFieldsAndEmptyOnes) {
  EXPECT_EQ(Split("a,b,,d\nnext"), (Fields{"a", "b", "", "d"}));
  EXPECT_EQ(Split(",\n"), (Fields{"", ""}));
  EXPECT_EQ(Split("x"), (Fields{"x"}));
  EXPECT_EQ(Split("1\t\t3", '\t'), (Fields{"1", "", "3"}));
}

TEST(CsvParserTest, StripsCarriageReturnOfCrlf) {
  int newlines = 0;
  EXPECT_EQ(Split("a,b\r\nc", ',', &newlines), (Fields{"a", "b"}));
  EXPECT_EQ(newlines, 1);
  EXPECT_EQ(Split("a,\r\n"), (Fields{"a", ""}));
  EXPECT_EQ(Split("a,\"q\"\r\n"), (Fields{"a", "q"}));
}

TEST(CsvParserTest, QuotedFieldsHoldDelimitersQuotesAndLineBreaks) {
  EXPECT_EQ(Split("1,\"Bug's Life, A (1998)\",x\n"), (Fields{"1", "Bug's Life, A (1998)", "x"}));
  EXPECT_EQ(Split("\"say \"\"hi\"\"\",2\n"), (Fields{"say \"hi\"", "2"}));
  EXPECT_EQ(Split("\"\",2\n"), (Fields{"", "2"}));
  int newlines = 0;
  EXPECT_EQ(Split("\"two\nlines\",z\nnext", ',', &newlines), (Fields{"two\nlines", "z"}));
  EXPECT_EQ(newlines, 2);
  // A quote inside an unquoted field is an ordinary character.
  EXPECT_EQ(Split("5'2\",x\n"), (Fields{"5'2\"", "x"}));
}

TEST(CsvParserTest, UnterminatedQuoteIsReported) {
  bool unterminated = false;
  Split("a,\"open", ',', nullptr, &unterminated);
  EXPECT_TRUE(unterminated);
}

TEST(CsvParserTest, FindsCompleteRecords) {
  const std::string text = "a,b\nc,\"d\ne\"\nf,g";
  int newlines = 0;
  const char* e = FindRecordEnd(text.data(), text.data() + text.size(), ',', &newlines);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e - text.data(), 4);
  EXPECT_EQ(newlines, 1);
  e = FindRecordEnd(text.data() + 4, text.data() + text.size(), ',', &newlines);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e - text.data(), 12);  // the line break inside quotes does not end the record
  EXPECT_EQ(newlines, 2);
  EXPECT_EQ(CompleteRecordsLength(text.data(), text.size(), ','), 12u);
  EXPECT_EQ(CompleteRecordsLength("x,\"open\nmore", 12, ','), 0u);
  EXPECT_EQ(CompleteRecordsLength("1,2\n3,4\n5", 9, ','), 8u);
}

TEST(CsvParserTest, ParsesNumbersAndMissingValues) {
  float x = 0;
  EXPECT_TRUE(ParseFloat("104.0", &x));
  EXPECT_FLOAT_EQ(x, 104.f);
  EXPECT_TRUE(ParseFloat("-1", &x));
  EXPECT_FLOAT_EQ(x, -1.f);
  EXPECT_TRUE(ParseFloat(" +2.5e-1 ", &x));
  EXPECT_FLOAT_EQ(x, 0.25f);
  EXPECT_TRUE(ParseFloat("0.11914000000000001", &x));
  EXPECT_FLOAT_EQ(x, 0.11914f);
  EXPECT_FALSE(ParseFloat("", &x));
  EXPECT_FALSE(ParseFloat("12abc", &x));
  EXPECT_FALSE(ParseFloat("abc", &x));
  EXPECT_TRUE(IsMissingNumber(""));
  EXPECT_TRUE(IsMissingNumber("NA"));
  EXPECT_TRUE(IsMissingNumber("nan"));
  EXPECT_TRUE(IsMissingNumber("NaN"));
  EXPECT_FALSE(IsMissingNumber("0"));
}

}  // namespace
}  // namespace shardrec::data
