use syncobj::prelude::*;

#[derive(Replicated)]
union Bits {
    int: u32,
    float: f32,
}

fn main() {}
