#pragma once
// The functions behind the pipeline's ops (ops.cpp), and how often each ran in this process.
#include <string>

int score_impl(int x);   // -> middle -> deep_helper
int scale_impl(int x);   // reads kFactor
int twin_a_impl(int x);  // -> shared_step
int twin_b_impl(int x);  // -> shared_step
int executed(const std::string& op);
