mod roundtrip;
mod scheduled;
