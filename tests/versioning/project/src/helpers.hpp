#pragma once
int middle(int x);       // helpers.cpp: calls deep_helper
int shared_step(int x);  // helpers.cpp: used by twin_a and twin_b
int deep_helper(int x);  // deep.cpp
